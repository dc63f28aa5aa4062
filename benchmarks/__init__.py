"""The benchmark suite of issue 7: baycat against s5cmd, rclone and the AWS CLI.

Run it with `nox -s bench` (see `benchmarks.run` for the options). One module, one job:

- `dataset`: the seeded tree generator (sizes, presets for `--scale`);
- `mutate`: the per-scenario changes (modify, touch, rename, delete 1 %);
- `procs`: running one command with a timeout, wall time and peak RSS (`wait4`);
- `fileio`: bytes read from local files, from an `strace -y` log;
- `proxy`: the counting proxy (tests/support) as a subprocess;
- `tools`: how each tool is invoked, its version and its honest best configuration;
- `verify`: whether a bucket or a restored tree matches the source;
- `hashbench`: the `--pool-size` scaling micro-benchmark;
- `scenarios`: the scenario sequence, one pass over all tools;
- `scale`: the million-file scenarios (issue 8; rclone beside the initial sync) and
  manifest update vs find;
- `report`: docs/benchmarks.md and docs/benchmarks.json;
- `run`: the command line.
"""
