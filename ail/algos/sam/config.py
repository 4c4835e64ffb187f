"""SAM's settings (``conf/algo/sam.yaml``): each key's type, range and choices, checked once per launch.

The learner reads the validated model (``SAMLearner.algo``); values and their meaning are in the YAML.
The actor-critic that trains on D's reward is ``algo.generator`` (``ddpg``: the paper's SAM,
``td3``, ``sac``); its settings are the section of that name, read through :attr:`SAMConfig.ac`,
as GAIL's generator reads ``algo.ppo`` or ``algo.trpo``. The other keys are shared.
"""

from __future__ import annotations

from typing import Annotated, Literal, Optional, Union

from pydantic import BeforeValidator, Field, model_validator

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
    head_init: Optional[PosNum] = Field(json_schema_extra={"accepted": "null (nn.Linear's init) or a positive number"})


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


class DeterministicCritic(SAMCritic):
    target_noise: NonNegNum
    target_noise_clip: NonNegNum


class SAMExploration(Section):
    param_noise: Optional[PosNum] = Field(json_schema_extra={"accepted": "null (off) or a positive number"})
    param_noise_factor: Annotated[float, BeforeValidator(no_bool), accepts("a number > 1", gt=1)]
    adapt_every: PosInt
    action_noise: Literal["ou", "normal", "none"]
    action_noise_sigma: NonNegNum


class SACEntropy(Section):
    coef: Union[Literal["auto"], PosNum] = Field(
        json_schema_extra={"accepted": "auto (learned towards the target entropy) or a positive number (fixed)"}
    )
    target: Union[Literal["auto"], Number] = Field(json_schema_extra={"accepted": "auto (-act_dim) or a number (nats)"})
    init: PosNum
    lr: PosNum


class ActorCritic(Section):
    """The settings every generator has."""

    label: str
    learning_starts: NonNegInt
    nstep: PosInt
    one_step_loss: Flag
    network: SAMNetwork
    actor: SAMActor
    normalize_obs: Flag
    obs_clip: PosNum


class DeterministicActorCritic(ActorCritic):
    """``ddpg`` and ``td3``: a deterministic tanh actor that explores with added noise."""

    critic: DeterministicCritic
    exploration: SAMExploration


class SACActorCritic(ActorCritic):
    """``sac``: a tanh-Gaussian actor that explores by sampling itself, with an entropy temperature."""

    critic: SAMCritic
    entropy: SACEntropy
    log_std_bounds: tuple[Number, Number] = Field(json_schema_extra={"accepted": "[low, high] with low < high"})

    @model_validator(mode="after")
    def _ordered(self) -> "SACActorCritic":
        low, high = self.log_std_bounds
        if not low < high:
            raise ValueError(f"log_std_bounds=[{low}, {high}] is invalid; accepted: [low, high] with low < high")
        return self


Generator = Literal["ddpg", "td3", "sac"]
GENERATORS = ("ddpg", "td3", "sac")


class SAMConfig(AlgoConfig):
    generator: Generator
    ddpg: DeterministicActorCritic
    td3: DeterministicActorCritic
    sac: SACActorCritic
    workers: PosInt
    reward: SAMReward
    allow_biased_reward: Flag
    absorbing: Flag
    recompute_rewards: Flag
    demo_subsample: PosInt
    expert_fraction: Fraction
    buffer_size: PosInt
    batch_size: PosInt
    gamma: float = Field(gt=0, lt=1, json_schema_extra={"accepted": "0 < gamma < 1"})
    tau: Discount
    grad_clip: Optional[PosNum] = Field(json_schema_extra={"accepted": "null (off) or a positive number"})
    compile: Flag
    schedule: SAMSchedule
    discriminator: DiscriminatorConfig

    @property
    def ac(self) -> Union[DeterministicActorCritic, SACActorCritic]:
        """The settings of the generator ``algo.generator`` names (``algo.ddpg``, ``algo.td3`` or ``algo.sac``)."""
        return getattr(self, self.generator)

    @property
    def stochastic(self) -> bool:
        """Whether the actor is SAC's tanh-Gaussian (else a deterministic tanh actor)."""
        return isinstance(self.ac, SACActorCritic)
