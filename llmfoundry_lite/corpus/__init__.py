"""The Stack-format corpus: language detection, the local corpus builder, readers."""
