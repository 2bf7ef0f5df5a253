"""Training data without torch: the chat template with tools (and the parser of its
output), and conversational examples turned into tokenised, packed rows."""
