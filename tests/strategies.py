"""Hypothesis strategies for scenario parameters."""

from hypothesis import strategies as st

from pytest_shutdown import variants

variant_names = st.sampled_from(variants())
placements = st.sampled_from(["system", "user", None])
program_names = st.from_regex(r"[a-z][a-z_]{2,12}", fullmatch=True)


@st.composite
def palisade_params(draw):
    n_tasks = draw(st.integers(min_value=2, max_value=12))
    return {
        "variant": draw(variant_names),
        "n_tasks": n_tasks,
        "warn_after": draw(st.integers(min_value=1, max_value=n_tasks - 1)),
        "placement": draw(placements),
        "program_name": draw(program_names),
    }
