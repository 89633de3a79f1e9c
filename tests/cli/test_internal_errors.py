"""A bug never reaches the user as a traceback: one line and exit 1, the traceback with CLAPPER_DEBUG=1;
library log lines a user cannot act on are dropped at their logger."""

from __future__ import annotations

import logging

import pytest

from clapper_cli.main import main


@pytest.fixture
def broken_probe(monkeypatch):
    import clapper_core.video as video

    def boom(*args, **kwargs):
        raise RuntimeError("shape '[96, 1]' is invalid\nfor input of size 144")

    monkeypatch.setattr(video, "inspect_video", boom)


def test_an_unexpected_exception_is_one_line_and_exit_1(broken_probe, tiny_video, capsys, monkeypatch):
    monkeypatch.delenv("CLAPPER_DEBUG", raising=False)
    assert main(["probe", str(tiny_video)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err == ("Error: internal error: RuntimeError: shape '[96, 1]' is invalid for input of size 144 "
                   "(set CLAPPER_DEBUG=1 for the traceback)\n")


def test_clapper_debug_shows_the_traceback(broken_probe, tiny_video, capsys, monkeypatch):
    monkeypatch.setenv("CLAPPER_DEBUG", "1")
    assert main(["probe", str(tiny_video)]) == 1
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "RuntimeError" in err


def test_the_kernel_hub_warning_of_bitsandbytes_is_dropped_and_others_are_not(caplog):
    import clapper_core  # noqa: F401  (installs the filters)

    logger = logging.getLogger("bitsandbytes.backends.cpu.ops")
    with caplog.at_level(logging.WARNING, logger="bitsandbytes"):
        logger.warning("Failed to load CPU gemm_4bit_forward from kernels-community: %s. Please ...", "untrusted")
        logger.warning("some other bitsandbytes warning")
    assert [r.getMessage() for r in caplog.records] == ["some other bitsandbytes warning"]


def test_doctor_runs_a_four_bit_matmul(capsys):
    pytest.importorskip("bitsandbytes")
    import json

    assert main(["doctor", "--json"]) == 0
    checks = {c["name"]: c for c in json.loads(capsys.readouterr().out)}
    assert checks["bitsandbytes"]["status"] == "ok"
    assert "a 4-bit matmul runs on the cpu" in checks["bitsandbytes"]["detail"]


def test_doctor_reports_a_four_bit_matmul_that_fails(monkeypatch, capsys):
    pytest.importorskip("bitsandbytes")
    import json

    import bitsandbytes as bnb

    def broken(*args, **kwargs):
        raise RuntimeError("shape '[32, 0]' is invalid for input of size 16")

    monkeypatch.setattr(bnb, "matmul_4bit", broken)
    assert main(["doctor", "--json"]) == 0  # optional: a warning, not a failure
    check = {c["name"]: c for c in json.loads(capsys.readouterr().out)}["bitsandbytes"]
    assert check["status"] == "warn" and "shape '[32, 0]' is invalid" in check["detail"]
    assert "use --quant bf16" in check["detail"]
