"""Set the course's GitHub repository URL in one place and make every notebook agree with it.

The URL lives in `utils.REPO_URL` (utils/__init__.py). Each notebook carries it twice:
  * the Colab badge in its first cell,
    https://colab.research.google.com/github/OWNER/NAME/blob/main/<the notebook's own path>
  * the `git clone` URL in its first code cell (the Colab-only setup cell).
pyproject.toml's [project.urls] Repository carries it once more, and README.md's Colab links, if any.

    python scripts/set_repo_url.py https://github.com/OWNER/NAME   # set it and rewrite everything
    python scripts/set_repo_url.py                                 # re-sync everything to utils.REPO_URL
    python scripts/set_repo_url.py --check                         # exit 1 and list what disagrees

Notebooks are edited surgically: only the JSON strings of the badge line and of the clone line change,
every other byte (outputs, execution counts, metadata, formatting) stays as it was; nothing is run.
The badge's path is taken from where the notebook lies, so a moved or copied notebook is fixed too.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BRANCH = "main"
COLAB = "https://colab.research.google.com/github/"
URL_FORM = re.compile(r"^https://github\.com/([A-Za-z0-9][A-Za-z0-9-]*)/([A-Za-z0-9._-]+)$")
REPO_URL_LINE = re.compile(r'^(REPO_URL\s*=\s*)(["\'])([^"\']*)\2', re.MULTILINE)
# a Colab link to a GitHub notebook: (prefix)(owner/name)(/blob/branch/)(path)
COLAB_LINK = re.compile(r"https://colab\.research\.google\.com/github/([^/\s)\"']+/[^/\s)\"']+)/blob/([^/\s)\"']+)/([^\s)\"']+)")
GITHUB_URL = re.compile(r"https://github\.com/[A-Za-z0-9][A-Za-z0-9-]*/[A-Za-z0-9._-]+?(?:\.git)?(?=[\"'\s,)\]]|$)")


class RepoUrlError(ValueError):
    pass


def normalise(url: str) -> str:
    """'https://github.com/OWNER/NAME' from the forms people paste (trailing slash, .git, http, www)."""
    url = url.strip().rstrip("/")
    url = re.sub(r"\.git$", "", url)
    url = re.sub(r"^(https?://)?(www\.)?github\.com/", "https://github.com/", url)
    if not URL_FORM.match(url):
        raise RepoUrlError(f"not a GitHub repository URL of the form https://github.com/OWNER/NAME: {url!r}")
    return url


def current_url(root: Path = ROOT) -> str:
    match = REPO_URL_LINE.search((root / "utils" / "__init__.py").read_text(encoding="utf-8"))
    if not match:
        raise RepoUrlError("no REPO_URL = \"...\" line in utils/__init__.py")
    return match.group(3)


def notebooks(root: Path = ROOT) -> list[Path]:
    return sorted(p for p in (root / "notebooks").glob("*/*.ipynb") if ".ipynb_checkpoints" not in p.parts)


# ---------------------------------------------------------------------------------------------- notebooks

def _lines(cell: dict) -> list[str]:
    source = cell.get("source", [])
    return [source] if isinstance(source, str) else list(source)


def badge_url(url: str, relative: str) -> str:
    return f"{url.replace('https://github.com/', COLAB)}/blob/{BRANCH}/{relative}"


def _planned_edits(nb: dict, url: str, relative: str) -> tuple[list[tuple[int, int, str, str]], list[str]]:
    """The (cell, line, old, new) string edits that make `nb` agree with `url`, and what cannot be fixed."""
    edits, problems = [], []
    cells = nb.get("cells", [])
    if not cells:
        return edits, ["no cells"]
    badge = badge_url(url, relative)
    found = False
    for j, line in enumerate(_lines(cells[0])):
        if COLAB_LINK.search(line):
            found = True
            new = COLAB_LINK.sub(badge, line, count=1)
            if new != line:
                edits.append((0, j, line, new))
            break
    if not found:
        problems.append("the first cell has no Colab badge (add one; this script only rewrites it)")
    code = [i for i, c in enumerate(cells) if c.get("cell_type") == "code"]
    if not code or "google.colab" not in "".join(_lines(cells[code[0]])):
        problems.append("the first code cell is not the Colab-only setup cell")
    else:
        clones = [(j, line) for j, line in enumerate(_lines(cells[code[0]])) if "clone" in line and GITHUB_URL.search(line)]
        if not clones:
            problems.append("the setup cell has no `git clone https://github.com/...` line")
        for j, line in clones:
            new = GITHUB_URL.sub(url, line)
            if new != line:
                edits.append((code[0], j, line, new))
    return edits, problems


def _json_forms(text: str) -> list[str]:
    """How a string may appear in the file: as nbformat writes it (UTF-8) or ASCII-escaped."""
    forms = [json.dumps(text, ensure_ascii=False)]
    if json.dumps(text) not in forms:
        forms.append(json.dumps(text))
    return forms


def rewrite_notebook_text(raw: str, url: str, relative: str) -> tuple[str, list[str], list[str]]:
    """(new raw text, descriptions of the changes, problems) for one notebook's file contents.

    Each edited string is replaced in the raw JSON text in place, so the rest of the file is byte-identical;
    the result is parsed back and compared with the intended notebook as a guard.
    """
    nb = json.loads(raw)
    edits, problems = _planned_edits(nb, url, relative)
    if not edits:
        return raw, [], problems
    text, changes = raw, []
    for i, j, old, new in edits:
        for escaped, old_form in enumerate(_json_forms(old)):
            start = text.find(old_form)
            if start >= 0:
                break
        else:
            raise RepoUrlError(f"{relative}: cannot find cell {i}'s line {j} in the file's text")
        new_form = json.dumps(new, ensure_ascii=bool(escaped))  # escape non-ASCII only where the file does
        text = text[:start] + new_form + text[start + len(old_form):]
        kind = "badge" if i == 0 else "clone URL"
        changes.append(f"{relative}: {kind}: {old.strip()}  ->  {new.strip()}")
    expected = json.loads(raw)
    for i, j, old, new in edits:
        source = expected["cells"][i]["source"]
        if isinstance(source, str):
            expected["cells"][i]["source"] = new
        else:
            source[j] = new
    if json.loads(text) != expected:
        raise RepoUrlError(f"{relative}: the in-place edit did not give the intended notebook; file left alone")
    return text, changes, problems


# ---------------------------------------------------------------------------------------------- the rest

def _rewrite_utils(text: str, url: str) -> str:
    return REPO_URL_LINE.sub(lambda m: f"{m.group(1)}{m.group(2)}{url}{m.group(2)}", text, count=1)


def _rewrite_pyproject(text: str, url: str) -> str:
    section = re.search(r"^\[project\.urls\]\s*$(.*?)(?=^\[|\Z)", text, re.MULTILINE | re.DOTALL)
    if not section:
        return text
    body = re.sub(r'^(Repository\s*=\s*)"[^"]*"', lambda m: f'{m.group(1)}"{url}"', section.group(1),
                  count=1, flags=re.MULTILINE)
    return text[:section.start(1)] + body + text[section.end(1):]


def _rewrite_readme(text: str, url: str, old_url: str | None) -> str:
    repo = url.removeprefix("https://github.com/")
    text = COLAB_LINK.sub(lambda m: f"{COLAB}{repo}/blob/{m.group(2)}/{m.group(3)}", text)
    if old_url and old_url != url:
        text = re.sub(re.escape(old_url) + r"(?![A-Za-z0-9._-])", url, text)
    return text


def sync(root: Path = ROOT, url: str | None = None, write: bool = True) -> tuple[list[str], list[str]]:
    """Make everything agree with `url` (default: the current utils.REPO_URL).

    Returns (changes, problems): what was (or, with write=False, would be) changed, and what this script
    cannot fix. With write=False nothing is written: that is the check.
    """
    old_url = current_url(root)
    url = normalise(url if url is not None else old_url)
    changes, problems = [], []
    if old_url != url:
        changes.append(f"utils/__init__.py: REPO_URL: {old_url}  ->  {url}")

    pending: dict[Path, str] = {}
    init = root / "utils" / "__init__.py"
    text = init.read_text(encoding="utf-8")
    if _rewrite_utils(text, url) != text:
        pending[init] = _rewrite_utils(text, url)
    pyproject = root / "pyproject.toml"
    if pyproject.exists():
        text = pyproject.read_text(encoding="utf-8")
        new = _rewrite_pyproject(text, url)
        if new != text:
            pending[pyproject] = new
            changes.append(f"pyproject.toml: [project.urls] Repository -> {url}")
        elif f'"{url}"' not in text:
            problems.append("pyproject.toml: no [project.urls] Repository line")
    readme = root / "README.md"
    if readme.exists():
        text = readme.read_text(encoding="utf-8")
        new = _rewrite_readme(text, url, old_url)
        if new != text:
            pending[readme] = new
            changes.append("README.md: Colab links / repository URL")

    for path in notebooks(root):
        relative = path.relative_to(root).as_posix()
        raw = path.read_bytes().decode("utf-8")
        try:
            new, nb_changes, nb_problems = rewrite_notebook_text(raw, url, relative)
        except (RepoUrlError, json.JSONDecodeError) as error:
            problems.append(f"{relative}: {error}")
            continue
        changes += nb_changes
        problems += [f"{relative}: {p}" for p in nb_problems]
        if new != raw:
            pending[path] = new

    if write:
        for path, text in pending.items():
            with open(path, "w", encoding="utf-8", newline="") as file:  # newline="": keep the file's line ends
                file.write(text)
    return changes, problems


def check(root: Path = ROOT) -> list[str]:
    """Everything that disagrees with utils.REPO_URL (empty when all agree); writes nothing."""
    changes, problems = sync(root, write=False)
    return changes + problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("url", nargs="?", help="https://github.com/OWNER/NAME (default: the current utils.REPO_URL)")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 listing what disagrees")
    parser.add_argument("--root", type=Path, default=ROOT, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        if args.check:
            if args.url:
                parser.error("--check compares with utils.REPO_URL; give no URL")
            disagreements = check(args.root)
            for line in disagreements:
                print(line)
            print(f"{len(disagreements)} disagreement(s) with {current_url(args.root)}" if disagreements
                  else f"everything agrees with {current_url(args.root)}")
            return 1 if disagreements else 0
        changes, problems = sync(args.root, args.url)
    except RepoUrlError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for line in changes:
        print(line)
    for line in problems:
        print(f"not fixed: {line}", file=sys.stderr)
    print(f"{len(changes)} change(s); {current_url(args.root)}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
