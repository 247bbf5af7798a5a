"""Reference outcomes of the REAL Keras callbacks, for test/callbacks.test.ts.

Runs `keras.callbacks.EarlyStopping` and `keras.callbacks.ReduceLROnPlateau`
(the library's own classes, not a reimplementation) on scripted metric
sequences and writes what they did to test/fixtures/keras-callbacks.json.

Each callback gets a tiny compiled model (Dense(1) on a 1-feature input);
`on_train_begin` is called, then `on_epoch_end(epoch, logs)` for each scripted
value (Keras epoch index 0, 1, ...; the fixture also numbers them from 1 like
our workflow), then `on_train_end`.  Before each epoch end the model's kernel
is set to the (1-based) epoch number, so after `on_train_end` the kernel tells
which epoch's weights the final model holds (what restore_best_weights did).

Fixture conventions: configs use our camelCase field names
(src/config/train-config.ts) with `mode` already 'min' or 'max'; a metric value
`null` means the monitored key is absent from the logs (other keys are still
logged); the strings "NaN", "Infinity", "-Infinity" stand for those floats,
which JSON cannot spell.

Regenerate (from the repository root):

    python3 -m venv .cache/pyref-venv
    .cache/pyref-venv/bin/pip install .cache/wheels/tensorflow_cpu-2.21.0-*.whl
    KERAS_BACKEND=tensorflow TF_CPP_MIN_LOG_LEVEL=3 \
        .cache/pyref-venv/bin/python tools/keras_callbacks_reference.py

(`pip install tensorflow-cpu` of another 2.x version works too; the versions
used are recorded in the fixture.)
"""

import json
import math
import os
import random
import sys
import warnings

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import keras  # noqa: E402

OUT = os.path.join(
    os.path.dirname(os.path.abspath(__file__)),
    "..",
    "test",
    "fixtures",
    "keras-callbacks.json",
)

# Logged next to the monitored metric so that "missing" means a real logs dict
# without the monitored key, as in a fit() whose validation did not run.
OTHER_KEY = "loss_other"


def to_py(value):
    """Fixture metric value -> Python float (or None for a missing metric)."""
    if value is None:
        return None
    if isinstance(value, str):
        return float({"NaN": "nan", "Infinity": "inf", "-Infinity": "-inf"}[value])
    return float(value)


def to_json(value):
    """Python float/None -> JSON-safe value (non-finite floats as strings)."""
    if value is None:
        return None
    value = float(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def make_model(learning_rate=0.01):
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=learning_rate), loss="mse"
    )
    model.stop_training = False
    return model


def tag_weights(model, epoch1):
    """Marks the model's weights as 'the weights at the end of epoch epoch1'."""
    model.set_weights(
        [np.array([[float(epoch1)]], dtype="float32"), np.zeros((1,), "float32")]
    )


def weights_tag(model):
    return int(round(float(model.get_weights()[0][0][0])))


def logs_for(monitor, value):
    logs = {OTHER_KEY: 0.25}
    if value is not None:
        logs[monitor] = to_py(value)
    return logs


def run_early_stopping(case):
    cfg = case["config"]
    cb = keras.callbacks.EarlyStopping(
        monitor=cfg["monitor"],
        min_delta=cfg["minDelta"],
        patience=cfg["patience"],
        mode=cfg["mode"],
        baseline=cfg["baseline"],
        restore_best_weights=cfg["restoreBestWeights"],
        start_from_epoch=cfg["startFromEpoch"],
    )
    model = make_model()
    cb.set_model(model)
    cb.on_train_begin()
    epochs = []
    last = 0
    for index, value in enumerate(case["metrics"]):
        epoch1 = index + 1
        tag_weights(model, epoch1)
        cb.on_epoch_end(index, logs_for(cfg["monitor"], value))
        last = epoch1
        stop = bool(model.stop_training)
        epochs.append(
            {"epoch": epoch1, "wait": int(cb.wait), "best": to_json(cb.best), "stop": stop}
        )
        if stop:
            break
    cb.on_train_end()
    return {
        **case,
        "expected": {
            "epochs": epochs,
            "epochsRun": last,
            # Keras's own attributes, 0-based epoch indexes (0 also means "none").
            "kerasStoppedEpoch": int(cb.stopped_epoch),
            "kerasBestEpoch": int(cb.best_epoch),
            "bestWeightsRecorded": cb.best_weights is not None,
            # 1-based epoch whose weights the model holds after on_train_end.
            "finalWeightsEpoch": weights_tag(model),
        },
    }


def run_plateau(case):
    cfg = case["config"]
    cb = keras.callbacks.ReduceLROnPlateau(
        monitor=cfg["monitor"],
        factor=cfg["factor"],
        patience=cfg["patience"],
        mode=cfg["mode"],
        min_delta=cfg["minDelta"],
        cooldown=cfg["cooldown"],
        min_lr=cfg["minLr"],
    )
    model = make_model(case["initialLr"])
    cb.set_model(model)
    cb.on_train_begin()
    initial = float(model.optimizer.learning_rate)
    epochs = []
    for index, value in enumerate(case["metrics"]):
        cb.on_epoch_end(index, logs_for(cfg["monitor"], value))
        epochs.append(
            {
                "epoch": index + 1,
                "lr": float(model.optimizer.learning_rate),
                "wait": int(cb.wait),
                "cooldownCounter": int(cb.cooldown_counter),
                "best": to_json(cb.best),
            }
        )
    cb.on_train_end()
    return {**case, "expected": {"initialLr": initial, "epochs": epochs}}


# --- EarlyStopping cases -----------------------------------------------------

MIN_SEQS = {
    "improve": [1.0, 0.9, 0.8, 0.7, 0.6, 0.5],
    "plateau": [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0],
    "worse": [1.0, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6],
    "improve-then-plateau": [1.0, 0.8, 0.7, 0.7, 0.72, 0.71, 0.75, 0.8, 0.9],
    "oscillate": [1.0, 0.9, 0.95, 0.85, 0.9, 0.86, 0.84, 0.9, 0.95, 0.99],
    "small-steps": [1.0, 0.97, 0.94, 0.91, 0.88, 0.85, 0.8, 0.79, 0.78, 0.77],
    "exact-min-delta-steps": [1.0, 0.95, 0.9, 0.85, 0.8, 0.75, 0.7],
    "missing": [1.0, None, 0.9, None, None, 0.95, 0.96, 0.97, 0.98],
    "missing-first": [None, None, 1.0, 1.1, 1.2, 1.3],
    "all-missing": [None, None, None, None],
    "worse-first": [1.0, 1.2, 1.3, 0.9, 1.0, 1.1, 1.2, 1.3],
    "late-best": [1.0, 1.1, 1.05, 1.2, 0.5, 0.6, 0.7, 0.8, 0.9],
    "nan-first": ["NaN", 1.0, 0.9, 0.8, 0.7, 0.6],
    "nan-later": [1.0, 0.9, "NaN", "NaN", 0.8, 0.85, 0.9],
    "float32-tie": [0.5, 0.49999999, 0.49999998, 0.49999997, 0.4999999, 0.4],
    "single-epoch": [1.0],
    "min-delta-f32-yes": [1.0, 0.94999997, 0.94999997],
    "min-delta-f32-no": [1.0, 0.989999979, 0.5],
}


def mirror(seq):
    """A min-mode sequence turned into a max-mode (accuracy-like) one."""
    return [v if v is None or isinstance(v, str) else round(2.0 - v, 10) for v in seq]


def es_config(mode, patience=0, min_delta=0.0, baseline=None, restore=False, start=0):
    return {
        "monitor": "val_loss" if mode == "min" else "val_accuracy",
        "mode": mode,
        "minDelta": min_delta,
        "patience": patience,
        "baseline": baseline,
        "restoreBestWeights": restore,
        "startFromEpoch": start,
    }


def es_case(name, seq_name, mode="min", **kw):
    seq = MIN_SEQS[seq_name] if mode == "min" else mirror(MIN_SEQS[seq_name])
    return {"name": name, "config": es_config(mode, **kw), "metrics": seq}


def early_stopping_cases():
    c = es_case
    curated = [
        c("p0 improve", "improve"),
        c("p0 plateau", "plateau"),
        c("p0 worse", "worse"),
        c("p1 worse", "worse", patience=1),
        c("p2 plateau restore", "plateau", patience=2, restore=True),
        c("p3 improve-then-plateau", "improve-then-plateau", patience=3),
        c("p3 improve-then-plateau restore", "improve-then-plateau", patience=3, restore=True),
        c("p1 oscillate", "oscillate", patience=1),
        c("p2 oscillate restore", "oscillate", patience=2, restore=True),
        c("p3 oscillate", "oscillate", patience=3),
        c("p1 small-steps minDelta", "small-steps", patience=1, min_delta=0.05),
        c("p2 small-steps minDelta restore", "small-steps", patience=2, min_delta=0.05, restore=True),
        c("p0 exact minDelta steps", "exact-min-delta-steps", min_delta=0.05),
        c("p1 exact minDelta steps", "exact-min-delta-steps", patience=1, min_delta=0.05),
        c("p2 baseline never beaten", "improve", patience=2, baseline=0.3),
        c("p2 baseline never beaten restore", "improve", patience=2, baseline=0.3, restore=True),
        c("p2 baseline beaten midway", "improve-then-plateau", patience=2, baseline=0.75),
        c("p1 baseline always beaten", "worse-first", patience=1, baseline=1.5, restore=True),
        c("p1 baseline with minDelta", "exact-min-delta-steps", patience=1, baseline=0.9, min_delta=0.05),
        c("p0 start 2 worse", "worse", start=2),
        c("p1 start 2 worse restore", "worse", patience=1, start=2, restore=True),
        c("p2 start 2 late-best restore", "late-best", patience=2, start=2, restore=True),
        c("p1 start 2 missing-first", "missing-first", patience=1, start=2),
        c("p1 missing", "missing", patience=1),
        c("p2 missing restore", "missing", patience=2, restore=True),
        c("p0 missing-first restore", "missing-first", restore=True),
        c("p1 all-missing restore", "all-missing", patience=1, restore=True),
        c("p0 start beyond sequence restore", "worse", start=20, restore=True),
        c("p3 worse-first restore", "worse-first", patience=3, restore=True),
        c("p2 late-best", "late-best", patience=2),
        c("p1 nan-first", "nan-first", patience=1),
        c("p2 nan-first restore", "nan-first", patience=2, restore=True),
        c("p2 nan-later", "nan-later", patience=2),
        c("p0 float32 tie", "float32-tie"),
        c("p3 float32 tie restore", "float32-tie", patience=3, restore=True),
        c("p0 single epoch restore", "single-epoch", restore=True),
        # Keras 3 tests float32(current + min_delta) < float32(best), not current < best - min_delta:
        # these values are improvements under one formula and not under the other.
        c("p0 minDelta float32 boundary improves", "min-delta-f32-yes", min_delta=0.05),
        c("p0 minDelta float32 boundary does not improve", "min-delta-f32-no", min_delta=0.01),
        # max mode
        c("max p0 improve", "improve", mode="max"),
        c("max p1 worse", "worse", mode="max", patience=1),
        c("max p2 oscillate restore", "oscillate", mode="max", patience=2, restore=True),
        c("max p1 small-steps minDelta", "small-steps", mode="max", patience=1, min_delta=0.05),
        c("max p0 exact minDelta steps", "exact-min-delta-steps", mode="max", min_delta=0.05),
        c("max p2 baseline never beaten", "improve", mode="max", patience=2, baseline=1.7),
        c("max p2 baseline beaten midway restore", "improve-then-plateau", mode="max", patience=2, baseline=1.25, restore=True),
        c("max p1 start 2 late-best restore", "late-best", mode="max", patience=1, start=2, restore=True),
        c("max p2 missing", "missing", mode="max", patience=2),
        c("max p1 nan-first", "nan-first", mode="max", patience=1),
        c("max p0 float32 tie", "float32-tie", mode="max"),
        {"name": "max p0 minDelta float32 boundary does not improve", "config": es_config("max", min_delta=0.05), "metrics": [1.0, 1.050000012, 1.2]},
        {"name": "max p0 minDelta float32 boundary improves", "config": es_config("max", min_delta=0.1), "metrics": [1.0, 1.10000006, 1.10000006]},
    ]
    return curated + early_stopping_sweep()


def random_sequence(rng, n, missing_rate):
    """A noisy random walk with ties (2 decimals) and occasional missing epochs."""
    value = round(rng.uniform(0.5, 1.5), 2)
    seq = []
    for _ in range(n):
        roll = rng.random()
        if roll < missing_rate:
            seq.append(None)
            continue
        if roll < missing_rate + 0.15:
            pass  # exact repeat of the previous value
        else:
            value = round(value + rng.choice([-1, -1, -1, 1]) * rng.choice([0.01, 0.03, 0.05, 0.1]), 2)
        seq.append(value)
    return seq


def early_stopping_sweep():
    """A seeded grid sweep: every listed option value appears many times."""
    rng = random.Random(20240501)
    cases = []
    i = 0
    for patience in (0, 1, 2, 3):
        for min_delta in (0.0, 0.05):
            for baseline_kind in ("none", "easy", "hard"):
                for start in (0, 2):
                    i += 1
                    mode = "min" if i % 2 else "max"
                    restore = (i // 2) % 2 == 0
                    seq = random_sequence(rng, rng.randint(4, 14), 0.1)
                    if mode == "max":
                        seq = mirror(seq)
                    baseline = {
                        "none": None,
                        # Beaten by most values / by almost none.
                        "easy": 1.6 if mode == "min" else 0.4,
                        "hard": 0.6 if mode == "min" else 1.4,
                    }[baseline_kind]
                    cases.append(
                        {
                            "name": f"sweep {i} {mode} p{patience} d{min_delta} b={baseline} s{start} r{int(restore)}",
                            "config": es_config(mode, patience, min_delta, baseline, restore, start),
                            "metrics": seq,
                        }
                    )
    return cases


# --- ReduceLROnPlateau cases -------------------------------------------------


def rp_config(mode="min", factor=0.1, patience=10, min_delta=1e-4, cooldown=0, min_lr=0.0):
    return {
        "monitor": "val_loss" if mode == "min" else "val_accuracy",
        "mode": mode,
        "factor": factor,
        "patience": patience,
        "minDelta": min_delta,
        "cooldown": cooldown,
        "minLr": min_lr,
    }


def rp_case(name, seq, initial_lr=0.01, **kw):
    return {"name": name, "config": rp_config(**kw), "initialLr": initial_lr, "metrics": seq}


FLAT = [1.0] * 12
WORSE = [1.0 + 0.1 * i for i in range(12)]


def plateau_cases():
    c = rp_case
    curated = [
        c("defaults flat", FLAT, patience=10),
        c("p2 flat", FLAT, patience=2),
        c("p0 worse reduces every epoch", WORSE, patience=0),
        c("p0 improve never reduces", [1.0 - 0.05 * i for i in range(10)], patience=0),
        c("p1 cooldown 2 flat", FLAT, patience=1, cooldown=2),
        c("p2 cooldown 1 improve during cooldown", [1.0, 1.0, 1.0, 0.8, 0.8, 0.8, 0.8, 0.7, 0.7, 0.7, 0.7], patience=2, cooldown=1),
        c("p1 cooldown 3 oscillate", [1.0, 0.9, 0.95, 0.85, 0.9, 0.86, 0.84, 0.9, 0.95, 0.99, 0.8, 0.81], patience=1, cooldown=3),
        c("p2 minDelta 0.1 small steps", [1.0, 0.95, 0.9, 0.85, 0.8, 0.75, 0.7, 0.65, 0.6, 0.55], patience=2, min_delta=0.1),
        c("p1 minDelta 0 ties", [1.0, 1.0, 0.9, 0.9, 0.9, 0.8, 0.8], patience=1, min_delta=0.0),
        c("p1 minLr floor reached", WORSE, patience=1, factor=0.5, min_lr=1e-3),
        c("p0 minLr equals initial lr", WORSE[:5], initial_lr=0.001, patience=0, min_lr=0.001),
        c("p0 minLr not float32 exact", WORSE[:6], initial_lr=0.001, patience=0, factor=0.5, min_lr=0.0003),
        c("p0 factor 0.3 float32 rounding", WORSE, initial_lr=0.1, patience=0, factor=0.3),
        c("p0 factor 0.2 long", [1.0 + 0.01 * i for i in range(20)], initial_lr=1e-3, patience=0, factor=0.2, min_lr=1e-5),
        c("max p2 flat", [0.5] * 10, mode="max", patience=2),
        c("max p1 cooldown 1 improve then flat", [0.5, 0.6, 0.7, 0.7, 0.7, 0.71, 0.7, 0.7, 0.7], mode="max", patience=1, cooldown=1, min_delta=0.05),
        c("max p0 minDelta worse", [0.9 - 0.05 * i for i in range(8)], mode="max", patience=0, factor=0.5),
        c("p1 cooldown 2 missing during cooldown", [1.0, 1.0, None, None, 1.0, 1.0, None, 1.0, 1.0, 1.0], patience=1, cooldown=2),
        c("p1 missing first", [None, None, 1.0, 1.1, 1.2, 1.3], patience=1),
        c("p1 nan first", ["NaN", 1.0, 0.9, 0.8, 0.7, 0.6], patience=1),
        c("p2 nan later", [1.0, 0.9, "NaN", "NaN", 0.8, 0.85, 0.9], patience=2, factor=0.5),
        c("p0 float32 tie", [0.5, 0.49999999, 0.49999998, 0.4999999, 0.4], patience=0, min_delta=0.0),
        c("p1 lr already below minLr", WORSE[:5], initial_lr=1e-4, patience=1, min_lr=1e-3),
        # float32(current + min_delta) < float32(best) vs current < best - min_delta (see EarlyStopping).
        c("p0 minDelta float32 boundary improves", [1.0, 0.89999997, 0.89999997], patience=0, min_delta=0.1),
        c("p0 minDelta float32 boundary does not improve", [0.5, 0.399999991, 0.1], patience=0, min_delta=0.1),
        c("max p0 minDelta float32 boundary improves", [0.5, 0.55000003, 0.55000003], mode="max", patience=0, min_delta=0.05),
    ]
    return curated + plateau_sweep()


def plateau_sweep():
    rng = random.Random(7)
    cases = []
    i = 0
    for factor in (0.1, 0.5, 0.3):
        for patience in (0, 1, 3):
            for cooldown in (0, 2):
                i += 1
                mode = "min" if i % 2 else "max"
                seq = random_sequence(rng, rng.randint(8, 18), 0.08)
                if mode == "max":
                    seq = mirror(seq)
                min_delta = rng.choice([0.0, 1e-4, 0.02, 0.05])
                min_lr = rng.choice([0.0, 0.0, 1e-4, 5e-4])
                initial_lr = rng.choice([0.01, 0.001, 0.003])
                cases.append(
                    rp_case(
                        f"sweep {i} {mode} f{factor} p{patience} c{cooldown} d{min_delta} m{min_lr}",
                        seq,
                        initial_lr=initial_lr,
                        mode=mode,
                        factor=factor,
                        patience=patience,
                        cooldown=cooldown,
                        min_delta=min_delta,
                        min_lr=min_lr,
                    )
                )
    return cases


def dump(fixture):
    """JSON with one case per line: readable and diff-friendly."""
    lines = ["{"]
    lines.append(f'  "generator": {json.dumps(fixture["generator"])},')
    lines.append(f'  "versions": {json.dumps(fixture["versions"])},')
    for key in ("earlyStopping", "reduceLrOnPlateau"):
        lines.append(f'  "{key}": [')
        items = [f"    {json.dumps(case, allow_nan=False)}" for case in fixture[key]]
        lines.append(",\n".join(items))
        lines.append("  ]" + ("," if key == "earlyStopping" else ""))
    lines.append("}")
    return "\n".join(lines) + "\n"


def main():
    warnings.simplefilter("ignore")  # "metric not available" warnings are expected
    fixture = {
        "generator": "tools/keras_callbacks_reference.py",
        "versions": {
            "keras": keras.__version__,
            "tensorflow": tf.__version__,
            "backend": keras.backend.backend(),
            "python": sys.version.split()[0],
        },
        "earlyStopping": [run_early_stopping(case) for case in early_stopping_cases()],
        "reduceLrOnPlateau": [run_plateau(case) for case in plateau_cases()],
    }
    for key in ("earlyStopping", "reduceLrOnPlateau"):
        names = [c["name"] for c in fixture[key]]
        assert len(names) == len(set(names)), f"{key} case names must be unique"
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        f.write(dump(fixture))
    print(
        f"wrote {os.path.normpath(OUT)}: {len(fixture['earlyStopping'])} EarlyStopping and "
        f"{len(fixture['reduceLrOnPlateau'])} ReduceLROnPlateau cases "
        f"(keras {keras.__version__}, tensorflow {tf.__version__})"
    )


if __name__ == "__main__":
    main()
