"""MGAIL's and Dyna-AIL's settings (``conf/algo/mgail.yaml``, ``conf/algo/dyna.yaml``): each key's
type, range and choices, checked once per launch. The learners read the validated model (``.algo``).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BeforeValidator, StrictInt

from ail.schema import (
    Activation,
    AlgoConfig,
    Discount,
    DiscriminatorConfig,
    Flag,
    Fraction,
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


class MBPolicy(Section):
    net_arch: Layers
    lr: PosNum
    lr_schedule: Literal["constant", "linear"]
    average: Fraction
    noise_std: NonNegNum
    temperature: PosNum
    action_bound: Literal["tanh", "clip"]
    bound_penalty: NonNegNum
    grad_clip: PosNum


class ForwardModelConfig(Section):
    kind: Literal["basic", "advanced"]
    width: PosInt
    decoder: Layers
    delta: Flag
    activation: Activation
    members: PosInt
    train_horizon: PosInt
    lr: PosNum
    max_error: PosNum
    plan_bound: PosNum
    expert_fraction: Fraction


class ModelBasedConfig(AlgoConfig):
    n_envs: PosInt
    unroll_steps: PosInt
    gamma: Discount
    cost_weight: Number
    store_unroll: Flag
    warmup_steps: NonNegInt
    replay_size: PosInt
    batch_size: PosInt
    policy: MBPolicy
    forward_model: ForwardModelConfig
    discriminator: DiscriminatorConfig


class MGAILConfig(ModelBasedConfig):
    prep_iters: NonNegInt
    block_iters: PosInt
    collect_every: PosInt
    collect_steps: PosInt
    collect_start: Literal["live", "expert"]


class TrustRegionConfig(Section):
    max_kl: PosNum
    cg_damping: NonNegNum
    cg_iters: PosInt
    backtrack_steps: PosInt
    backtrack_ratio: Annotated[float, BeforeValidator(no_bool), accepts("a number in (0, 1)", gt=0, lt=1)]
    kl_accept: PosNum


class DynaConfig(ModelBasedConfig):
    learn_iters: PosInt
    fm_iters: PosInt
    plan_iters: Annotated[StrictInt, accepts("an integer >= 0 (0 = no planning)", ge=0)]
    plan_steps: PosInt
    plan_batch: PosInt
    policy_update: Literal["adam", "trpo"]
    trust_region: TrustRegionConfig
