"""The log safety net (`pipeline.redact.text`) fuzzed: whatever surrounds them, an object key
under a user's prefix, an email, a UUID said to be a user's and the values of a row Postgres
quotes never come out; a line redacted twice reads as it did once (a call site's `text`, then
the log hook's), so one person's lines still read together; and text with none of them comes
out unchanged."""

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
# A profile's or a file's name as people write them ("Song (live), take 2"), or one that
# holds Postgres's own words.
names = st.one_of(
    st.text(alphabet=string.ascii_letters + string.digits + " _-.(),'", min_size=1, max_size=30),
    st.sampled_from(["grandma) already lullaby", "x) is not present y", "Key (user_id)=(z"]),
)
user_prefixes = st.sampled_from(
    ["user_id=", "user ", "user_id: ", "owner_id=", '"user_id" : "', "user_id=UUID('",
     "'user_id': UUID('", "X-User-Id: "]
)  # fmt: skip
emails = st.from_regex(r"[a-z][a-z0-9.+-]{0,12}", fullmatch=True).map(lambda s: s + "@example.org")


@st.composite
def secrets_in_text(draw) -> tuple[str, list[str]]:
    """A line with personal things in it, and the things that must not come out."""
    user, profile, file_id = draw(uuids), draw(uuids), draw(uuids)
    name = draw(names).strip() or "x"
    lowered = name.lower()
    named = [lowered] if len(lowered) > 5 else []  # a short one may occur in the filler anyway
    forms = {
        "key": (
            keys.dataset_key(user, profile, file_id, name + ".wav"),
            [str(user), keys.safe_filename(name + ".wav")],
        ),
        "email": (draw(emails), ["@example.org"]),
        "user id": (f"{draw(user_prefixes)}{user}", [str(user)]),
        "unique": (
            f"DETAIL:  Key (user_id, lower(btrim(name)))=({user}, {lowered}) already exists.",
            [str(user), *named],
        ),
        "foreign key": (f"Key (user_id)=({user}) is not present in table", [str(user)]),
        "check": (f"Failing row contains ({profile}, {user}, {name}, draft).", [str(user), *named]),
    }
    chosen = draw(st.lists(st.sampled_from(sorted(forms)), min_size=1, max_size=4))
    parts, secrets, fillers = [], [], []
    for form in chosen:
        text, hidden = forms[form]
        fillers.append(draw(filler))
        parts += [fillers[-1], text]
        secrets += hidden
    fillers.append(draw(filler))
    parts.append(fillers[-1])
    # A name the filler says too ("000000") is the filler's as well, which is not withheld.
    around = " ".join(fillers)
    return " ".join(parts), [s for s in secrets if s not in named or s not in around]


@settings(max_examples=400, deadline=None)
@given(secrets_in_text())
def test_nothing_personal_comes_out(case: tuple[str, list[str]]) -> None:
    line, secrets = case
    out = redact.text(line)
    for secret in secrets:
        if secret.startswith("@"):
            assert not re.search(r"\S@example\.org", out), (line, out)
        else:
            assert secret not in out, (line, out)
    assert redact.text(out) == out, "a second pass changes nothing"


@settings(max_examples=300, deadline=None)
@given(filler, st.lists(uuids, max_size=3))
def test_text_without_personal_things_is_unchanged(text: str, ids: list[UUID]) -> None:
    """Row ids not said to be a user's are kept: operators look rows up by them."""
    line = " ".join([text, *(f"job {i}" for i in ids)])
    assert redact.text(line) == line
