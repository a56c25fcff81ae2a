"""`srender bag`: a recorded robot run (rosbag2 or ROS 1 bag) in, a rosbag2 with it plus synthesized camera streams out."""

from __future__ import annotations

import argparse

from srender_ros.errors import InputError

DEFAULT_PROMPT = "a cluttered warehouse aisle"

EPILOG = """examples:
  srender bag --input run_bag --output run_cam --fixed-frame odom --camera-frame base_link \\
      --extrinsic "0.2 0 1.0 0 0 0" --rate 10
  srender bag --input run_bag --output run_cam --pose-topic /odom --extrinsic "0.2 0 1.0 0 0 0"
  srender bag --input rgbd_dataset_freiburg1_xyz.bag --output fr1_xyz_cam --fixed-frame world \
      --camera-frame openni_rgb_optical_frame --topic-prefix srender --rate 30     (a ROS 1 bag)
see docs/bag.md"""


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg,unused-ignore]
    from srender_ros.cli.render_cmd import add_camera_args, add_pipeline_args

    p = sub.add_parser(
        "bag", help="render a camera along a recorded run: rosbag2 or ROS 1 bag in, rosbag2 + camera topics out",
        description="Read a rosbag2 (MCAP or sqlite3) or a ROS 1 bag (converted to ROS 2 types), find the camera's "
                    "pose from TF or a pose topic, render images along it and write every input message plus "
                    "<prefix>/image_raw, camera_info, depth/image_raw and keyframe_schedule to a new rosbag2.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--input", required=True,
                   help="input rosbag2 folder, a single .mcap / .db3 file, or a ROS 1 .bag file")
    p.add_argument("--output", required=True, help="output rosbag2 folder (must not exist unless --overwrite)")
    p.add_argument("--prompt", default=DEFAULT_PROMPT, help=f"environment prompt (default {DEFAULT_PROMPT!r})")
    w = p.add_argument_group("where the camera is (TF or a pose topic)")
    w.add_argument("--fixed-frame", default=None, help="world frame of the poses (TF route default: odom)")
    w.add_argument("--camera-frame", default=None, help="TF frame the camera is attached to (looked up from --fixed-frame)")
    w.add_argument("--pose-topic", default=None,
                   help="Odometry, PoseStamped, PoseWithCovarianceStamped, TransformStamped or Path topic")
    w.add_argument("--extrinsic", default=None,
                   help="fixed camera offset from the TF / pose frame: 'x y z qx qy qz qw' or 'x y z roll pitch yaw'")
    w.add_argument("--camera-convention", choices=["body", "optical"], default=None,
                   help="axes of the camera frame: body (REP 103, x forward) or optical (z forward); default optical "
                        "when the camera frame's name contains 'optical' and no --extrinsic is given, else body")
    w.add_argument("--optical-frame", default=None, help="frame_id of the images (default derived from the camera frame)")
    t = p.add_argument_group("when")
    t.add_argument("--rate", type=float, default=None, help="frames per second over the known span (default: one frame "
                                                             "per pose message)")
    t.add_argument("--start", type=float, default=None, help="window start, seconds after the first pose stamp")
    t.add_argument("--end", type=float, default=None, help="window end, seconds after the first pose stamp")
    t.add_argument("--outside", choices=["refuse", "clamp"], default="refuse",
                   help="times outside the pose data: refuse (default) or hold the nearest pose")
    o = p.add_argument_group("output")
    o.add_argument("--topic-prefix", default="camera", help="camera topics go under /<prefix>/ (default camera)")
    o.add_argument("--storage", choices=["mcap", "sqlite3"], default="mcap", help="output storage (default mcap)")
    o.add_argument("--overwrite", action="store_true", help="replace an existing output bag (once the new one is complete)")
    o.add_argument("--no-depth", action="store_true", help="do not write <prefix>/depth/image_raw")
    o.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_camera_args(p)
    add_pipeline_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from srender_ros.app.compose import build_pipeline
    from srender_ros.bag.reader import open_input_bag
    from srender_ros.bag.replay import ReplayConfig, replay_bag
    from srender_ros.bag.writer import check_output_path
    from srender_ros.cli.render_cmd import app_config, load_image
    from srender_ros.cli.render_session import camera_from_args

    config = ReplayConfig(
        input=args.input, output=args.output, prompt=args.prompt,
        intrinsics=camera_from_args(args.width, args.height, args.fov_deg),
        fixed_frame=args.fixed_frame, camera_frame=args.camera_frame, pose_topic=args.pose_topic,
        extrinsic=args.extrinsic, camera_convention=args.camera_convention, optical_frame=args.optical_frame,
        rate_hz=args.rate, start_s=args.start, end_s=args.end, outside=args.outside,
        topic_prefix=args.topic_prefix, storage=args.storage, overwrite=args.overwrite, depth=not args.no_depth,
        progress=not args.no_progress)
    # Cheap checks before models load: a wrong path should not cost a minute of loading.
    if not config.input.exists():
        raise InputError(f"--input {config.input} does not exist")
    check_output_path(config.output, [config.input], config.overwrite)
    with open_input_bag(config.input):  # an unreadable bag (e.g. an unindexed ROS 1 bag) fails before models load
        pass
    pipeline = build_pipeline(app_config(args))
    summary = replay_bag(config, pipeline, load_image(args.image) if args.image else None)
    print(f"srender bag: wrote {summary.output}")
    print(summary.format())
    return 0
