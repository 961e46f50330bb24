"""The four steps of the method, one module each, run in order by :class:`featteam.pipeline.Run`.

Each step is a :class:`~featteam.steps.base.Step`: its name, the settings its result depends
on, its artefacts, and ``run(context) -> StepResult``.  Step modules do not import each other;
they share :mod:`featteam.candidates`, :mod:`featteam.decoding` and :mod:`featteam.report`.
"""

from .base import RunContext, Step, StepResult
from .golden import GoldenStep
from .latent import LatentStep
from .student import StudentStep
from .teaming import TeamingStep

#: The steps in the order they run.
STEPS: tuple[Step, ...] = (GoldenStep(), LatentStep(), StudentStep(), TeamingStep())
STEP_NAMES: tuple[str, ...] = tuple(step.name for step in STEPS)

__all__ = ["GoldenStep", "LatentStep", "RunContext", "STEPS", "STEP_NAMES", "Step", "StepResult", "StudentStep",
           "TeamingStep"]
