"""Flow parameters and events are user input too: a path-like study, modality or dataset
sent to the ingest flow fails the run with one line and takes nothing."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from prefect.client.schemas.objects import StateType

from flows.ingest import ingest_flow
from resistomics.errors import InputError
from resistomics.pipeline import Workspace

Land = Callable[..., str]


@pytest.mark.parametrize(
    ("parameters", "named"),
    [
        ({"study": "../../escaped"}, "study '../../escaped'"),
        ({"study": "trial", "modality": "../expression"}, "modality '../expression'"),
        ({"study": "trial", "dataset": "bulk@v2"}, "dataset 'bulk@v2'"),
    ],
)
def test_path_like_flow_parameters_fail_the_run_and_take_nothing(
    workspace: Workspace, land: Land, parameters: dict[str, str], named: str
) -> None:
    path = land("bulk.tsv")
    before = workspace.catalog.snapshot()

    state = ingest_flow(path, return_state=True, **parameters)

    assert state.type == StateType.FAILED
    message = state.message or ""
    assert message.startswith(f"{named}: [name] ") and "\n" not in message
    with pytest.raises(InputError):
        state.result()
    assert Path(path).exists()  # still waiting in the landing zone, untouched
    assert workspace.catalog.snapshot() == before
