"""`mlops stack logs`: the end of a log read from its end, and new lines followed across several logs."""

import threading
import time
from pathlib import Path

import pytest

from tooling.stack import follow_logs, last_lines


@pytest.mark.parametrize(("written", "count", "expected"), [
    (0, 5, []),
    (3, 5, ["line 0", "line 1", "line 2"]),
    (100_000, 2, ["line 99998", "line 99999"]),  # beyond one 64 KiB read from the end
    (10, 0, []),
])  # fmt: skip
def test_last_lines(tmp_path: Path, written: int, count: int, expected: list[str]) -> None:
    log = tmp_path / "server.log"
    log.write_text("".join(f"line {i}\n" for i in range(written)))
    assert last_lines(log, count) == expected


def test_follow_yields_only_new_lines_of_each_log(tmp_path: Path) -> None:
    logs = {name: tmp_path / f"{name}.log" for name in ("mlflow", "service")}
    for path in logs.values():
        path.write_text("old\n")

    def write_later() -> None:
        time.sleep(0.2)
        with logs["service"].open("a") as file:
            file.write("new service line\n")
        with logs["mlflow"].open("a") as file:
            file.write("new mlflow line\n")

    threading.Thread(target=write_later).start()
    followed = follow_logs(logs, interval=0.05)
    seen = {next(followed), next(followed)}
    followed.close()
    assert seen == {("service", "new service line"), ("mlflow", "new mlflow line")}
