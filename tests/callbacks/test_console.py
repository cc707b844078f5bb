"""The console prints one compact line per interval; per-layer statistics never reach it."""

from types import SimpleNamespace

from composer.core import Time, TimeUnit

from llmfoundry_lite.callbacks.console import CompactConsoleLogger, format_eta, train_line


def test_train_line_has_the_headline_numbers_only():
    metrics = {"loss/train/total": 2.34567, "lr-DecoupledAdamW/group0": 3e-4, "throughput/tokens_per_sec": 45500.4,
               "throughput/device/mfu": 0.523, "grad_health/block3/norm": 0.5, "humaneval/pass@1": 0.125}
    line = train_line(50, 24000, metrics, eta=3725)
    assert line == ("[step 50/24000] loss 2.3457 | lr 3.00e-04 | 45,500 tok/s | MFU 52.3% | ETA 1h02m"
                    " | humaneval/pass@1 0.125")
    assert (format_eta(42), format_eta(307)) == ("42s", "5m07s")


def fake_state(step: int, total: int = 100) -> SimpleNamespace:
    return SimpleNamespace(timestamp=SimpleNamespace(batch=Time(step, TimeUnit.BATCH)),
                           max_duration=Time(total, TimeUnit.BATCH),
                           get_elapsed_duration=lambda: Time(step / total, TimeUnit.DURATION))


def test_one_line_per_interval_however_many_metrics(capsys):
    console = CompactConsoleLogger(interval=10)
    console.fit_start(fake_state(0), None)
    for step in range(1, 31):
        console.log_metrics({"loss/train/total": 1.0 / step, **{f"grad_health/block{i}/{s}": 0.1 for i in range(20)
                                                                for s in ("norm", "min", "max", "zero_frac")}})
        console.batch_checkpoint(fake_state(step), None)
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("]")[0] for line in lines] == ["[step 10/100", "[step 20/100", "[step 30/100"]
    assert all("grad_health" not in line for line in lines)
    console.log_metrics({"metrics/eval/LanguageCrossEntropy": 3.21})
    console.eval_end(fake_state(30), None)
    assert capsys.readouterr().out.strip() == "[eval @ step 30] LanguageCrossEntropy 3.2100"
