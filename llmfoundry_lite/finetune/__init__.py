"""Instruction fine-tuning: chat template, conversation data, masking and packing."""
