"""Every PipelineConfig field reaches users (CLI flag and node parameter) or is internal on purpose."""

from __future__ import annotations

import argparse
from dataclasses import fields

import pytest

from srender_ros.app.options import (
    INTERNAL_FIELDS,
    PIPELINE_OPTIONS,
    add_pipeline_arguments,
    all_fields,
    exposed_fields,
    pipeline_config_from_args,
)
from srender_ros.engine.config import PipelineConfig
from srender_ros.errors import InputError
from srender_ros.ros.backend import pipeline_config
from srender_ros.ros.config import PARAM_NAMES, NodeConfig


def test_every_field_is_exposed_or_internal_on_purpose() -> None:
    missing = all_fields() - exposed_fields() - set(INTERNAL_FIELDS)
    assert not missing, f"PipelineConfig fields neither exposed nor listed in INTERNAL_FIELDS: {sorted(missing)}"
    assert not set(INTERNAL_FIELDS) - all_fields(), "INTERNAL_FIELDS names a field PipelineConfig no longer has"


def test_every_option_is_a_cli_flag_and_a_node_parameter() -> None:
    parser = argparse.ArgumentParser()
    add_pipeline_arguments(parser.add_argument_group("pipeline"))
    flags = {a for action in parser._actions for a in action.option_strings}
    for o in PIPELINE_OPTIONS:
        assert o.cli_flag in flags
        assert o.field in PARAM_NAMES, f"node parameter {o.field} missing from ros/config.py"
    assert {"--refine", "--refine-iterations"} <= flags
    assert {"refine", "refine_iterations"} <= set(PARAM_NAMES)


def test_defaults_come_from_pipeline_config() -> None:
    parser = argparse.ArgumentParser()
    add_pipeline_arguments(parser.add_argument_group("pipeline"))
    assert pipeline_config_from_args(parser.parse_args([])) == PipelineConfig()
    assert pipeline_config(NodeConfig()) == PipelineConfig()


def test_values_reach_the_config_from_both_front_ends() -> None:
    parser = argparse.ArgumentParser()
    add_pipeline_arguments(parser.add_argument_group("pipeline"))
    args = parser.parse_args(["--keyframe-lookahead", "3", "--max-footprint-px", "0", "--no-fill-holes",
                              "--coverage-scale", "0.25", "--keyframe-overscan", "1.5", "--refine",
                              "--refine-iterations", "7"])
    cli = pipeline_config_from_args(args)
    node = pipeline_config(NodeConfig(keyframe_lookahead=3, max_footprint_px=0.0, fill_holes=False, coverage_scale=0.25,
                                      keyframe_overscan=1.5, refine=True, refine_iterations=7))
    for cfg in (cli, node):
        assert cfg.keyframe_lookahead == 3 and cfg.max_footprint_px is None and not cfg.fill_holes
        assert cfg.coverage_scale == 0.25 and cfg.keyframe_overscan == 1.5
        assert cfg.refine is not None and cfg.refine.iterations == 7


@pytest.mark.parametrize("flag, value, field", [("--coverage-scale", "2", "coverage_scale"),
                                                ("--keyframe-overscan", "3", "keyframe_overscan"),
                                                ("--coarse-weight", "-1", "coarse_weight"),
                                                ("--camera-height", "-1.5", "camera_height_m")])
def test_bad_values_are_refused_naming_the_field(flag: str, value: str, field: str) -> None:
    parser = argparse.ArgumentParser()
    add_pipeline_arguments(parser.add_argument_group("pipeline"))
    with pytest.raises(InputError, match=field):
        pipeline_config_from_args(parser.parse_args([flag, value]))


def test_node_config_fields_match_pipeline_config_defaults() -> None:
    node = NodeConfig()
    pc = PipelineConfig()
    off = {o.field: o.off_value for o in PIPELINE_OPTIONS if o.off_value is not None}
    for f in fields(PipelineConfig):
        if f.name in {o.field for o in PIPELINE_OPTIONS} and f.name not in {"scheduler"} | set(off):
            assert getattr(node, f.name) == getattr(pc, f.name), f.name
    # optional numbers: the node holds the off value where the pipeline's default is None (a ROS
    # parameter cannot be None), else the same number
    for name, off_value in off.items():
        assert getattr(node, name) == (off_value if getattr(pc, name) is None else getattr(pc, name)), name
