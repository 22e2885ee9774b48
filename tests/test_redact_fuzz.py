"""The log safety net (`pipeline.redact.text`) fuzzed: whatever surrounds them, an object key
under a user's prefix, an email, a UUID said to be a user's and the values of a key Postgres
quotes never come out; and text with none of them comes out unchanged."""

import re
import string
from uuid import UUID

from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline import keys, redact

uuids = st.uuids()
# Log-ish filler: words, punctuation, quotes and brackets; no "@", so it never makes an email.
filler = st.text(
    alphabet=string.ascii_letters + string.digits + " .,:;=()[]{}'\"-_/\n", max_size=40
)
names = st.text(alphabet=string.ascii_letters + string.digits + " _-.", min_size=1, max_size=30)


@st.composite
def secrets_in_text(draw) -> tuple[str, list[str]]:
    """A line with personal things in it, and the things that must not come out."""
    user, profile, file_id = draw(uuids), draw(uuids), draw(uuids)
    name = draw(names).strip() or "x"
    safe_name = keys.safe_filename(name + ".wav")
    forms = {
        "key": (keys.dataset_key(user, profile, file_id, name + ".wav"), [str(user), safe_name]),
        "email": (
            f"{draw(st.from_regex(r'[a-z][a-z0-9.+-]{0,12}', fullmatch=True))}@example.org",
            ["@example.org"],
        ),
        "user id": (
            f"{draw(st.sampled_from(['user_id=', 'user ', 'user_id: ', 'owner_id=']))}{user}",
            [str(user)],
        ),
        "pg key": (
            f"Key (user_id, lower(btrim(name)))=({user}, {name.lower()}) already exists",
            [str(user)] + ([name.lower()] if len(name) > 3 else []),
        ),
    }
    chosen = draw(st.lists(st.sampled_from(sorted(forms)), min_size=1, max_size=4))
    parts, secrets = [], []
    for form in chosen:
        text, hidden = forms[form]
        parts += [draw(filler), text]
        secrets += hidden
    parts.append(draw(filler))
    return " ".join(parts), secrets


@settings(max_examples=300, deadline=None)
@given(secrets_in_text())
def test_nothing_personal_comes_out(case: tuple[str, list[str]]) -> None:
    line, secrets = case
    out = redact.text(line)
    for secret in secrets:
        if secret.startswith("@"):
            assert not re.search(r"\S@example\.org", out), (line, out)
        else:
            assert secret not in out, (line, out)


@settings(max_examples=300, deadline=None)
@given(filler, st.lists(uuids, max_size=3))
def test_text_without_personal_things_is_unchanged(text: str, ids: list[UUID]) -> None:
    """Row ids not said to be a user's are kept: operators look rows up by them."""
    line = " ".join([text, *(f"job {i}" for i in ids)])
    assert redact.text(line) == line
