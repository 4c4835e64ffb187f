"""SAM's settings (``conf/algo/sam.yaml``): each key's type, range and choices, checked once per launch.

The learner reads the validated model (``SAMLearner.algo``); values and their meaning are in the YAML.
"""

from __future__ import annotations

from typing import Annotated, Literal, Optional

from pydantic import BeforeValidator, Field

from ail.schema import (
    Activation,
    AlgoConfig,
    Discount,
    DiscriminatorConfig,
    Flag,
    Layers,
    NonNegInt,
    NonNegNum,
    Number,
    PosInt,
    PosNum,
    Section,
    accepts,
    no_bool,
)

SAMReward = Literal["minimax", "log_d", "logit", "env"]  # env: the task's own reward (the generator's ceiling)


class SAMSchedule(Section):
    env_steps: PosInt
    train_steps: PosInt
    d_steps: PosInt
    g_steps: PosInt


class SAMNetwork(Section):
    hidden: Layers
    activation: Activation
    layer_norm: Flag
    head_init: PosNum


class SAMActor(Section):
    lr: PosNum
    q_scale: Number
    d_scale: Number
    preact_penalty: NonNegNum
    policy_delay: PosInt


class SAMCritic(Section):
    lr: PosNum
    n_critics: PosInt
    loss: Literal["huber", "mse"]
    weight_decay: NonNegNum
    popart: Flag
    popart_min_var: PosNum
    target_noise: NonNegNum
    target_noise_clip: NonNegNum


class SAMExploration(Section):
    param_noise: Optional[PosNum] = Field(json_schema_extra={"accepted": "null (off) or a positive number"})
    param_noise_factor: Annotated[float, BeforeValidator(no_bool), accepts("a number > 1", gt=1)]
    adapt_every: PosInt
    action_noise: Literal["ou", "normal", "none"]
    action_noise_sigma: NonNegNum


class SAMConfig(AlgoConfig):
    workers: PosInt
    reward: SAMReward
    allow_biased_reward: Flag
    absorbing: Flag
    recompute_rewards: Flag
    demo_subsample: PosInt
    learning_starts: NonNegInt
    buffer_size: PosInt
    batch_size: PosInt
    gamma: float = Field(gt=0, lt=1, json_schema_extra={"accepted": "0 < gamma < 1"})
    tau: Discount
    nstep: PosInt
    one_step_loss: Flag
    grad_clip: Optional[PosNum] = Field(json_schema_extra={"accepted": "null (off) or a positive number"})
    compile: Flag
    schedule: SAMSchedule
    network: SAMNetwork
    actor: SAMActor
    critic: SAMCritic
    exploration: SAMExploration
    normalize_obs: Flag
    obs_clip: PosNum
    discriminator: DiscriminatorConfig
