"""Library errors name parameters; each interface words them (errors.OptionError)."""

import pytest

from facegender import cli
from facegender.cli import flag
from facegender.errors import FaceGenderError, InvalidOption, OptionError


def test_an_option_error_words_each_parameter_and_keeps_values_as_given():
    error = OptionError("{output} {file} is a folder; name a file, or leave {output} out; see {max_upload_mb}",
                        file="odd {name}.json")  # fmt: skip
    assert error.options == ("output", "max_upload_mb")
    assert str(error) == "output odd {name}.json is a folder; name a file, or leave output out; see max_upload_mb"
    assert error.worded(flag) == (
        "--output odd {name}.json is a folder; name a file, or leave --output out; see --max-upload-mb"
    )
    assert isinstance(error, FaceGenderError)  # callers that catch every user error still catch it


def test_an_invalid_option_is_an_option_error_with_its_value_shown():
    error = InvalidOption("abstain_band", "needs 0 <= LOW < HIGH <= 1", "0.7,0.2")
    assert (error.name, error.requirement, error.value) == ("abstain_band", "needs 0 <= LOW < HIGH <= 1", "0.7,0.2")
    assert str(error) == "abstain_band needs 0 <= LOW < HIGH <= 1, got '0.7,0.2'"
    assert error.worded(flag) == "--abstain-band needs 0 <= LOW < HIGH <= 1, got '0.7,0.2'"
    assert str(InvalidOption("threshold", "must be between 0 and 1", 1.5)).endswith("got 1.5")


def test_the_cli_words_a_library_parameter_as_its_flag(tmp_path, capsys):
    photo = tmp_path / "missing.jpg"
    (tmp_path / "results").mkdir()
    code = cli.main(["predict", str(photo), "--output", str(tmp_path / "results")])
    assert code == 2
    error = capsys.readouterr().err
    assert error == f"error: --output {tmp_path / 'results'} is a folder; name a file, e.g. " \
                    f"{tmp_path / 'results' / 'results.json'}\n"  # fmt: skip


@pytest.mark.parametrize(("parameter", "shown"), [("out", "--out"), ("max_upload_mb", "--max-upload-mb")])
def test_flag(parameter, shown):
    assert flag(parameter) == shown
