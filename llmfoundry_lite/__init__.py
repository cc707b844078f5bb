"""llmfoundry_lite: pretrain code LLMs on the MosaicML stack.

Importing the package is cheap on purpose (no torch, no composer): commands
validate their configuration before any heavy import.
"""

__version__ = "0.1.0"
