"""hbmvalidate: run the real sglang-jax engine through a serving / RL lifecycle and compare the
measured device memory of each phase with the planner's prediction (see validator.cli)."""
