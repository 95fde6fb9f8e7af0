"""mana-credits: the credit and billing service of the Mana app ecosystem."""
