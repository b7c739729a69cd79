from mlflow.entities.model_registry import ModelVersion, ModelVersionTag

from mlops_core.registry import SemVer, next_semver


def _version(number: int, semver: str, signature="s1", data="d1", params="p1") -> ModelVersion:
    tags = [
        ModelVersionTag("semver", semver),
        ModelVersionTag("signature_digest", signature),
        ModelVersionTag("data_digest", data),
        ModelVersionTag("params_digest", params),
    ]
    return ModelVersion(name="m", version=str(number), creation_timestamp=0, tags=tags)


def test_first_version_is_1_0_0():
    assert next_semver([], signature_digest="s", data_digest="d", params_digest="p") == SemVer(1, 0, 0)


def test_same_data_and_params_is_a_patch():
    existing = [_version(1, "1.0.0")]
    assert str(next_semver(existing, signature_digest="s1", data_digest="d1", params_digest="p1")) == "1.0.1"


def test_new_data_or_params_is_a_minor():
    existing = [_version(1, "1.0.0"), _version(2, "1.0.1")]
    assert str(next_semver(existing, signature_digest="s1", data_digest="d2", params_digest="p1")) == "1.1.0"
    assert str(next_semver(existing, signature_digest="s1", data_digest="d1", params_digest="p9")) == "1.1.0"


def test_schema_change_is_a_major():
    existing = [_version(1, "1.3.2")]
    assert str(next_semver(existing, signature_digest="s2", data_digest="d1", params_digest="p1")) == "2.0.0"


def test_bumps_from_the_highest_semver_so_numbers_never_repeat():
    # Version 3 went back to the old schema after a 2.x line: its successor must not reuse 1.1.0.
    existing = [_version(1, "1.0.0"), _version(2, "2.0.0", signature="s2"), _version(3, "3.0.0", data="d3")]
    assert str(next_semver(existing, signature_digest="s1", data_digest="d4", params_digest="p1")) == "3.1.0"


def test_parse_round_trip_and_ordering():
    assert str(SemVer.parse("v2.10.3")) == "2.10.3"
    assert SemVer.parse("1.10.0") > SemVer.parse("1.9.9")
