"""One formatter for validation errors: every config file says what is wrong the same way."""

from __future__ import annotations

import re
from typing import Literal

import pytest
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from flowship._validation import MAX_PROBLEMS, config_error, describe
from flowship.errors import ConfigError


class _Job(BaseModel):
    model_config = ConfigDict(extra="forbid")
    engine: Literal["local", "spark"] = "local"
    id: str
    batch_size: int = Field(1000, ge=1)


def _error(data) -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        _Job.model_validate(data)
    return caught.value


def test_every_problem_on_one_line():
    text = describe(_error({"engine": "gpu", "speed": 3, "batch_size": 0}))
    assert text == (
        "field 'engine': Input should be 'local' or 'spark' (got 'gpu'); "
        "field 'id' is required; "
        "field 'batch_size': Input should be greater than or equal to 1 (got 0); "
        "unknown field 'speed'"
    )
    assert "\n" not in text


def test_hostile_input_stays_short():
    many = {f"x{i}": i for i in range(1000)}
    text = describe(_error({"id": "a" * 100_000, "batch_size": "9" * 5000, **many}))
    assert len(text) < 1000 and f"and {1000 + 1 - MAX_PROBLEMS} more" in text


def test_config_error_names_the_file():
    error = config_error("jobs/daily.yaml", _error({}), "See docs/batch.md.")
    assert isinstance(error, ConfigError)
    assert error.message == "jobs/daily.yaml: field 'id' is required"
    assert error.hint == "See docs/batch.md."


def test_every_config_file_uses_it(tmp_path):
    """jobs, gates, monitors and the serve file report an unknown field identically."""
    from flowship.batch.spec import parse_job
    from flowship.monitoring.specs import load_spec
    from flowship.registry.gate_config import load_config
    from flowship.serving.config import ServeConfig

    gates = tmp_path / "flowship.toml"
    gates.write_text("[models.M.staging]\ncolour = 'red'\n")
    monitor = tmp_path / "monitor.yaml"
    monitor.write_text("kind: monitor\nname: x\nhealth: {}\nmodel: M\ncolour: red\n")
    serve = tmp_path / "serve.yaml"
    serve.write_text("ref: m\ncolour: red\n")
    loaders = [
        lambda: parse_job({"model": "m", "input": "a", "output": "b", "id": "i", "colour": 1}),
        lambda: load_config(gates),
        lambda: load_spec(monitor),
        lambda: ServeConfig.from_yaml(serve),
    ]
    for load in loaders:
        with pytest.raises(ConfigError) as caught:
            load()
        assert re.search(r": unknown field '([\w.]+\.)?colour'$", caught.value.message)
