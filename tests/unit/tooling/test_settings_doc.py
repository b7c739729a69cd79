"""The settings reference is generated from the settings object and every setting explains itself."""

from pathlib import Path

from mlops_core.settings import PROJECT_ROOT, Settings
from tooling import settings_doc

PAGE = PROJECT_ROOT / "docs" / "settings.md"


def test_every_setting_has_a_description() -> None:
    undocumented = [row.env for row in settings_doc.rows() if not row.description]
    assert undocumented == []


def test_the_settings_page_is_generated_from_the_settings_object() -> None:
    assert PAGE.read_text() == settings_doc.as_markdown(), "regenerate: mlops settings --markdown > docs/settings.md"


def test_text_shows_effective_values_with_their_variable(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MLOPS_SERVICE__PORT", "3999")
    monkeypatch.setenv("MLOPS_BLUEGREEN__SMOKE_KEY", "secret-value")
    text = settings_doc.as_text(Settings(state_dir=tmp_path))
    assert "MLOPS_SERVICE__PORT=3999  (from the environment)\n    Port of the service." in text
    assert f"MLOPS_STATE_DIR={tmp_path}" in text
    assert "secret-value" not in text and "MLOPS_BLUEGREEN__SMOKE_KEY=**********" in text
    assert 'MLOPS_TRAINING__CANDIDATES=["logistic_regression", "random_forest", "hist_gradient_boosting"]' in text
