"""Faults and bad input, end to end: each case runs `blip_nb` (in this process through `cli.main`, or as a real second
process where the fault needs one) and asserts the exit code, the one-line message naming the file / field / argument,
and that nothing was lost or mixed. Issue 13 lists the cases; the notebooks test each piece on its own."""
import contextlib, io, json, os, pickle, signal, shutil, subprocess, sys, textwrap, threading, time, warnings
from pathlib import Path

import pytest
import torch
from PIL import Image

from blip_nb.cli import main
from blip_nb.config import get_config
from blip_nb.train import last_checkpoint, read_metrics

COLOURS = ["red", "green", "blue", "yellow"]


def run(*argv):
    "(exit code, stdout, stderr) of `blip_nb ARGV` run here; warnings are part of stderr."
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = lambda m, c, f, l, file=None, line=None: err.write(f"{c.__name__}: {m}\n")
        try: code = main([str(a) for a in argv])
        except SystemExit as e: code = e.code  # argparse: bad usage
    return code, out.getvalue(), err.getvalue()


def one_line_error(err, *needles):
    "The `blip_nb ...: error: ...` line of stderr holds every needle, and no traceback was printed."
    assert "Traceback" not in err, err
    lines = [l for l in err.splitlines() if ": error: " in l]
    assert len(lines) == 1, err
    for n in needles: assert n in lines[0], (n, lines[0])
    return lines[0]


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    "Eight coloured squares with captions, the tiny BLIP config, and a 2-step caption model trained from them."
    d = tmp_path_factory.mktemp("faults")
    (d/"img").mkdir()
    ann = []
    for i in range(8):
        Image.new("RGB", (40, 40), COLOURS[i % 4]).save(d/"img"/f"{i}.png")
        ann.append({"image": f"{i}.png", "caption": f"a {COLOURS[i % 4]} square"})
    (d/"ann.json").write_text(json.dumps(ann))
    get_config("tiny_blip").save(d/"tiny.json")
    code, out, err = train(d, d/"model_run")
    assert code == 0, err
    return d


def train(d, out, *extra, data=None, steps=2):
    return run("train", "blip_caption", "--data", data or d/"ann.json", "--image-root", d/"img", "--config", d/"tiny.json",
               "--steps", steps, "--batch-size", 4, "--precision", "fp32", "--out", out, "--quiet", *extra)


def weights(path):
    from safetensors.torch import load_file
    return load_file(str(path))


# --- a run folder has one owner ---------------------------------------------------------------------------------

def test_second_run_in_a_busy_folder_is_refused(ws):
    "A real second process holds the folder: this run is refused by name; the other one finishes unmixed."
    out = ws/"busy"
    holder = subprocess.Popen([sys.executable, "-m", "blip_nb.cli", "train", "blip_caption", "--data", ws/"ann.json",
                               "--image-root", ws/"img", "--config", ws/"tiny.json", "--steps", "40", "--batch-size", "4",
                               "--precision", "fp32", "--out", out, "--quiet"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "OMP_NUM_THREADS": "1"})
    t0 = time.time()
    while time.time() - t0 < 120 and holder.poll() is None:
        if (out/".lock").exists() and (out/".lock").read_text().strip(): break
        time.sleep(0.05)
    assert holder.poll() is None, holder.communicate()[1][-2000:]
    code, _, err = train(ws, out, steps=3)
    one_line_error(err, str(out), "belongs to a run in progress", f"pid {holder.pid}")
    assert code == 1
    _, herr = holder.communicate(timeout=300)
    assert holder.returncode == 0, herr[-2000:]
    steps = [r["step"] for r in read_metrics(out/"metrics.jsonl") if "loss" in r]
    assert steps == sorted(set(steps)) and steps[-1] == 40, steps  # one run's lines, none repeated
    assert (out/".lock").read_text() == ""  # released


def test_stale_lock_is_taken_over(ws):
    out = ws/"stale"; out.mkdir()
    (out/".lock").write_text(json.dumps({"pid": 4242424, "host": "old-host", "since": "2026-01-01 00:00:00"}))
    code, _, err = train(ws, out, steps=1)
    assert code == 0, err
    assert "taking over the lock of a run that ended without releasing it (pid 4242424 on old-host" in err


def test_kill_9_during_a_checkpoint_write_then_a_clean_start(ws):
    "A real process killed while writing a checkpoint leaves its temporary file; the next run removes it and resumes."
    out = ws/"killed"
    child = textwrap.dedent(f"""
        import sys, time, safetensors.torch as st
        def slow(tensors, path, metadata=None):  # the step-2 checkpoint: part of it written, then the kill comes
            with open(path, "wb") as f: f.write(b"half a checkpoint" * 1000); f.flush()
            print("WRITING", flush=True); time.sleep(120)
        st.save_file = slow
        from blip_nb.cli import main
        sys.exit(main(sys.argv[1:]))""")
    args = ["train", "blip_caption", "--data", ws/"ann.json", "--image-root", ws/"img", "--config", ws/"tiny.json",
            "--steps", "2", "--batch-size", "4", "--precision", "fp32", "--out", out, "--quiet"]
    p = subprocess.Popen([sys.executable, "-c", child, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    line = p.stdout.readline()
    assert line.strip() == "WRITING", p.communicate()[1][-2000:]
    p.send_signal(signal.SIGKILL); p.wait(timeout=60)
    tmps = list(out.rglob(".*.tmp"))
    assert tmps and tmps[0].stat().st_size > 0, sorted(out.rglob("*"))
    # the killed run saved nothing before step 2 (save_every is off) and step 2 never landed: a clean start
    code, outp, err = train(ws, out, steps=2)
    assert code == 0, err
    assert "removing 1 temporary file(s)" in err, err
    assert not list(out.rglob(".*.tmp"))
    assert last_checkpoint(out)["step"] == 2 and (out/"model.safetensors").exists()


# --- resume: same model only, fall back to what is intact -------------------------------------------------------

def _two_checkpoints(ws, name):
    from blip_nb.recipes import blip_caption
    out = ws/name
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        blip_caption(ws/"ann.json", out, config=str(ws/"tiny.json"), image_root=ws/"img", max_steps=2, batch_size=4,
                     save_every=1, keep_last=3, precision="fp32", progress=False)
    assert sorted(p.name for p in (out/"ckpt").glob("*.safetensors")) == ["step-0000001.safetensors", "step-0000002.safetensors"]
    return out


def test_resume_falls_back_to_the_previous_intact_checkpoint(ws):
    out = _two_checkpoints(ws, "damaged")
    latest = out/"ckpt"/"step-0000002.safetensors"
    latest.write_bytes(latest.read_bytes()[:1000])  # truncated, as a full disk or a kill during a copy leaves it
    code, _, err = train(ws, out, steps=3)
    assert code == 0, err
    assert "resuming from" in err and "step-0000001.safetensors, the newest intact checkpoint" in err, err
    assert "step-0000002.safetensors: cannot read this safetensors file" in err, err
    recs = [r["step"] for r in read_metrics(out/"metrics.jsonl") if "loss" in r]
    assert recs == [3], recs  # the first run's step-2 line went with its checkpoint: step 2 was trained again, not kept twice
    assert last_checkpoint(out)["step"] == 3


def test_unreadable_last_json_falls_back(ws):
    out = _two_checkpoints(ws, "badptr")
    (out/"last.json").write_text('{"step": 2, "weig')
    code, _, err = train(ws, out, steps=3)
    assert code == 0, err
    assert "last.json is unreadable" in err, err
    assert last_checkpoint(out)["step"] == 3


def test_resuming_another_models_run_is_refused(ws):
    other = get_config("tiny_blip")
    other = other.replace(text=other.text.replace(layers=other.text.layers + 1))
    other.save(ws/"other.json")
    before = sorted(p.name for p in (ws/"model_run").rglob("*"))
    code, _, err = run("train", "blip_caption", "--data", ws/"ann.json", "--image-root", ws/"img", "--config", ws/"other.json",
                       "--steps", 3, "--batch-size", 4, "--out", ws/"model_run", "--quiet")
    assert code == 1
    one_line_error(err, "was trained with another config", "text.layers")
    assert sorted(p.name for p in (ws/"model_run").rglob("*")) == before  # nothing written


# --- progress is guaranteed or the run stops ---------------------------------------------------------------------

@contextlib.contextmanager
def deadline(seconds):
    "Fail instead of hanging: training that loops forever is the bug under test."
    def boom(*_): raise TimeoutError(f"still running after {seconds} s")
    old = signal.signal(signal.SIGALRM, boom); signal.alarm(seconds)
    try: yield
    finally: signal.alarm(0); signal.signal(signal.SIGALRM, old)


def test_every_image_unreadable_stops_with_counts(ws):
    bad = ws/"bad_img"; bad.mkdir()
    ann = [{"image": f"{i}.png", "caption": "a square"} for i in range(8)]
    for i in range(8): (bad/f"{i}.png").write_bytes(b"not a png at all")
    (ws/"bad.json").write_text(json.dumps(ann))
    with deadline(120):
        code, _, err = run("train", "blip_caption", "--data", ws/"bad.json", "--image-root", bad, "--config", ws/"tiny.json",
                           "--steps", 5, "--batch-size", 4, "--out", ws/"allbad", "--quiet")
    assert code == 1
    line = one_line_error(err, "formed no optimizer step", "2 of 2 batches were empty", "8 ")
    assert not (ws/"allbad"/"model.safetensors").exists(), line


def test_batch_larger_than_the_data(ws):
    with deadline(120):
        code, _, err = train(ws, ws/"bigbatch", "--batch-size", 64)
    assert code == 1
    one_line_error(err, "no batch can be formed", "8 samples", "batch_size=64")


def test_bad_samples_are_counted(ws):
    mixed = ws/"mixed_img"; shutil.copytree(ws/"img", mixed)
    (mixed/"3.png").write_bytes(b"broken"); (mixed/"6.png").write_bytes(b"")
    code, out, err = run("train", "blip_caption", "--data", ws/"ann.json", "--image-root", mixed, "--config", ws/"tiny.json",
                         "--steps", 2, "--batch-size", 3, "--out", ws/"mixed", "--quiet")
    assert code == 0, err
    summary = [l for l in out.splitlines() if "samples skipped:" in l]
    assert summary and "samples skipped: none" not in summary[0], out
    logged = [r["skipped"] for r in read_metrics(ws/"mixed"/"metrics.jsonl") if "skipped" in r]
    assert logged and sum(logged[-1].values()) >= 1, logged


def test_sigterm_exits_130_and_installs_no_model(ws):
    out = ws/"term"
    def stop_when_started():
        t0 = time.time()
        while time.time() - t0 < 60:
            if (out/"metrics.jsonl").exists() and read_metrics(out/"metrics.jsonl"): break
            time.sleep(0.01)
        os.kill(os.getpid(), signal.SIGTERM)  # the training loop's handler turns it into a clean stop
    threading.Thread(target=stop_when_started, daemon=True).start()
    code, _, err = run("train", "blip_caption", "--data", ws/"ann.json", "--image-root", ws/"img", "--config", ws/"tiny.json",
                       "--steps", 400, "--batch-size", 4, "--out", out, "--quiet")
    assert code == 130, err
    assert "run the same command again to resume" in err
    assert not (out/"model.safetensors").exists() and last_checkpoint(out)["step"] < 400


def test_a_nan_loss_stops_with_its_step_and_installs_no_model(ws, monkeypatch):
    "A loss that turns NaN (here every cross-entropy from the second step on) stops the run: one line naming the step, exit 1."
    real, calls = torch.nn.functional.cross_entropy, []
    def poisoned(*a, **kw):
        calls.append(1)
        out = real(*a, **kw)
        return out * float("nan") if len(calls) > 1 else out
    monkeypatch.setattr(torch.nn.functional, "cross_entropy", poisoned)
    out = ws/"nan"
    code, _, err = train(ws, out, steps=3)
    assert code == 1, err
    one_line_error(err, "non-finite loss at optimizer step 2", "loss=nan")
    assert not (out/"model.safetensors").exists()
    ck = last_checkpoint(out)
    assert ck is None or ck["step"] < 2


def test_seed_makes_training_reproducible(ws):
    for name, seed in (("seed_a", 7), ("seed_b", 7), ("seed_c", 8)):
        code, _, err = train(ws, ws/name, "--seed", seed, steps=1)
        assert code == 0, err
    a, b, c = (weights(ws/n/"model.safetensors") for n in ("seed_a", "seed_b", "seed_c"))
    assert all(torch.equal(a[k], b[k]) for k in a), "the same seed gave different weights"
    assert not all(torch.equal(a[k], c[k]) for k in a), "another seed gave the same weights"


# --- one line, non-zero exit -------------------------------------------------------------------------------------

class Evil:
    def __reduce__(self): return (os.system, ("touch /tmp/blip_nb_pwned_by_test",))


def test_unsafe_and_damaged_checkpoints(ws):
    if os.path.exists("/tmp/blip_nb_pwned_by_test"): os.remove("/tmp/blip_nb_pwned_by_test")
    evil = ws/"evil.pth"
    with open(evil, "wb") as f: pickle.dump({"model": Evil()}, f, protocol=2)
    empty = ws/"empty.pth"; empty.write_bytes(b"")
    code, _, err = train(ws, ws/"evil_run", "--resume", evil)
    assert code == 1; one_line_error(err, str(evil), "refused to unpickle", "safetensors")
    code, _, err = run("caption", ws/"img"/"0.png", "--model", evil)
    assert code == 1; one_line_error(err, str(evil), "refused to unpickle")
    cfg = get_config("tiny_blip"); cfg = cfg.replace(vision=cfg.vision.replace(weights=str(evil)))
    cfg.save(ws/"evil_cfg.json")
    code, _, err = run("train", "blip_caption", "--data", ws/"ann.json", "--image-root", ws/"img", "--config", ws/"evil_cfg.json",
                       "--steps", 1, "--out", ws/"evil_cfg_run", "--quiet")
    assert code == 1; one_line_error(err, str(evil), "refused to unpickle")
    assert not os.path.exists("/tmp/blip_nb_pwned_by_test")  # never unpickled
    code, _, err = run("caption", ws/"img"/"0.png", "--model", empty)
    assert code == 1; one_line_error(err, str(empty), "is empty (0 bytes)")
    torch.save({"model": [1, 2, 3]}, ws/"list.pth")
    code, _, err = run("caption", ws/"img"/"0.png", "--model", ws/"list.pth")
    assert code == 1; one_line_error(err, "list.pth", "'model' is a list")


def test_out_is_a_file(ws):
    f = ws/"a_file"; f.write_text("keep me")
    for out, says in ((f, "it is a file"), (f/"run", "is a file, not a folder")):
        code, _, err = train(ws, out, steps=1)
        assert code == 1; one_line_error(err, str(out), says)
    assert f.read_text() == "keep me"


def test_bad_data_fails_fast_and_names_it(ws):
    t0 = time.time()
    code, _, err = run("train", "blip2_stage1", "--data", ws/"nope.json", "--steps", 1, "--out", ws/"nope_run")
    assert code == 1 and time.time() - t0 < 20  # before the (ViT-g) model is built
    one_line_error(err, "training data not found", "nope.json")
    (ws/"broken.json").write_text('[{"image": "0.png", "caption": "a red')
    code, _, err = run("train", "blip_caption", "--data", ws/"broken.json", "--steps", 1, "--out", ws/"broken_run")
    assert code == 1; one_line_error(err, "broken.json", "not valid JSON", "line 1")


def test_bad_arguments_exit_2(ws):
    for args in (["caption", "x.png", "--top-p", "0"], ["caption", "x.png", "--top-p", "1.5"],
                 ["caption", "x.png", "--temperature", "0"], ["caption", "x.png", "--temperature", "-1"],
                 ["train", "blip_caption", "--lr", "0"], ["train", "blip_caption", "--lr", "nan"], ["train", "blip_caption", "--lr", "3"]):
        code, _, err = run(*args)
        assert code == 2 and "must be in" in err, (args, err)


def test_invisible_queries_are_refused(ws):
    for q in ("\x00", "\u200b\u200b", "   "):
        code, out, err = run("retrieve", "--images", ws/"img", "--query", "a red square", q)
        assert code == 1 and out == "", out
        one_line_error(err, "nothing visible", "position(s) [1]")


def test_evaluation_stays_inside_the_image_root(ws):
    "A path that leaves --image-root is refused and counted, never opened (caption); a retrieval set names it and stops."
    outside = ws/"outside.png"; Image.new("RGB", (40, 40), "red").save(outside)
    ann = [{"image": f"{i}.png", "caption": f"a {COLOURS[i % 4]} square"} for i in range(4)]
    ann += [{"image": "../outside.png", "caption": "a red square"}, {"image": str(outside), "caption": "a red square"}]
    (ws/"escape.json").write_text(json.dumps(ann))
    from blip_nb.metrics import evaluate_captions
    from blip_nb.recipes import load_captions
    ds = load_captions(ws/"escape.json", ws/"img", split="test")
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        r = evaluate_captions(ws/"model_run"/"model.safetensors", ds, metrics=("bleu",), num_beams=1, max_new_tokens=5,
                              progress=False)
    assert len(r.captions) == 4 and len(r.refused) == 2, r.refused
    assert all("outside image root" in x for x in r.refused)
    kar = [{"image": a["image"], "caption": [a["caption"]]} for a in ann]
    (ws/"escape_ret.json").write_text(json.dumps(kar))
    code, out, err = run("eval", "retrieval", "--data", ws/"escape_ret.json", "--image-root", ws/"img", "--model",
                         ws/"model_run"/"model.safetensors", "--quiet")
    assert code == 1 and out == ""
    one_line_error(err, "2 of the retrieval set's 6 images cannot be used", "outside image root")


def test_unexpected_errors_are_one_line_and_debug_shows_the_traceback(ws, monkeypatch):
    import blip_nb.cli as cli
    def explode(a): raise ZeroDivisionError("deep inside")
    parser = cli._parser
    def patched():
        p = parser()
        for action in p._subparsers._group_actions[0].choices.values():
            if action.prog.endswith(" config"): action.set_defaults(func=explode)
        return p
    monkeypatch.setattr(cli, "_parser", patched)
    code, _, err = run("config")
    assert code == 1; one_line_error(err, "ZeroDivisionError: deep inside", "--debug")
    with pytest.raises(ZeroDivisionError): main(["--debug", "config"])
    monkeypatch.setenv("BLIP_NB_DEBUG", "1")
    with pytest.raises(ZeroDivisionError): main(["config"])


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("mount"), reason="needs root to mount a small file system")
def test_disk_full_names_the_file(ws, tmp_path):
    small = tmp_path/"small"; small.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=600k", "tmpfs", str(small)], capture_output=True).returncode:
        pytest.skip("mount refused here")
    try:
        code, _, err = train(ws, small/"run", steps=1)
        assert code == 1
        line = one_line_error(err, str(small/"run"), "no space left on the device")
        assert "MB free" in line
        assert not list((small/"run").rglob(".*.tmp"))  # nothing half-written left behind
        ptr = last_checkpoint(small/"run") if (small/"run"/"last.json").exists() else None
        assert ptr is None or (small/"run"/ptr["weights"]).exists()
    finally:
        subprocess.run(["umount", str(small)], capture_output=True)
