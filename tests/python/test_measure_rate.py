"""The arithmetic of `tests/browser/measure_rate.py`, the script that measures the lab's training
speed in a browser: step rates from sampled step counters, and the main-thread profile summary.
Cases are small enough to work out by hand; each expected figure is derived in its comment.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "browser"))

import measure_rate  # noqa: E402


def test_rates_from_samples():
    # Step 1 at 4 s (kernels compiling), then one step a second: step 5 at 8 s, step 9 at 12 s.
    samples = [(0.0, 0), (4.0, 1), (5.0, 2), (6.0, 3), (7.0, 4), (8.0, 5), (10.0, 7), (12.0, 9)]
    figures = measure_rate.summarise(samples, "1.00 steps/s")
    assert figures["steps"] == 9
    assert figures["steps_per_s"] == 0.75  # 9 steps in 12 s
    assert figures["first_step_s"] == 4.0
    assert figures["warm_from_step"] == 5
    assert figures["warm_steps_per_s"] == 1.0  # steps 5 → 9 in 8 s → 12 s
    assert figures["steps_over_time"] == [[4.0, 1], [5.0, 2], [6.0, 3], [7.0, 4], [8.0, 5], [10.0, 7], [12.0, 9]]


def test_no_warm_rate_before_the_warm_step():
    figures = measure_rate.summarise([(0.0, 0), (3.0, 1), (6.0, 2)], "")
    assert figures["steps_per_s"] == round(2 / 6, 3)
    assert "warm_steps_per_s" not in figures


def node(id, name, hits=0, children=()):
    return {"id": id, "callFrame": {"functionName": name}, "hitCount": hits, "children": list(children)}


def test_profile_shares_count_each_sample_once_per_label():
    # 10 samples: 2 idle; 5 in a launch inside the backward pass inside a step; 1 in the step's
    # optimiser update; 2 in page code outside training.
    profile = {
        "nodes": [
            node(1, "(root)", children=[2, 3, 9]),
            node(2, "(idle)", hits=2),
            node(3, "prunelab_app::driver::step::{{closure}}", children=[4, 6]),
            node(4, "burn_autodiff::tensor::AutodiffTensor<B>::backward::h1", children=[5]),
            # Recursion: the label's frame twice on one stack still counts the sample once.
            node(5, "cubecl_runtime::client::Client::launch::h2", hits=3, children=[7]),
            node(6, "prunelab_engine::train::trainer::Trainer::apply_update::h3", hits=1),
            node(7, "cubecl_runtime::client::Client::launch::h2", hits=2),
            node(9, "leptos::render", hits=2),
        ]
    }
    summary = measure_rate.summarise_profile(profile)
    assert summary["samples"] == 10
    assert summary["main_thread_busy"] == 0.8
    shares = summary["share_of_time"]
    assert shares["training step"] == 0.6
    assert shares["backward pass"] == 0.5
    assert shares["kernel launches (cubecl)"] == 0.5
    assert shares["optimiser update"] == 0.1
    assert shares["bind groups (wgpu → WebGPU)"] == 0.0


def test_only_named_non_software_adapters_count_as_hardware():
    assert measure_rate.is_hardware({"found": True, "vendor": "nvidia", "architecture": ""})
    assert not measure_rate.is_hardware({"found": True, "vendor": "google", "architecture": "swiftshader"})
    assert not measure_rate.is_hardware({"found": True, "vendor": "", "architecture": ""})
    assert not measure_rate.is_hardware({"found": False, "why": "requestAdapter returned null"})
