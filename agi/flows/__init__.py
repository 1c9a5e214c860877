"""IVR flows in YAML: the model (:mod:`.model`), the loader and checker (:mod:`.loader`), the
prompts (:mod:`.prompts`), the registry with hot reload (:mod:`.registry`), the FastAGI runner
(:mod:`.runner`) and the picture of a flow (:mod:`.graph`)."""
from agi.flows.model import Flow, FlowError, Node, Prompt  # noqa: F401
