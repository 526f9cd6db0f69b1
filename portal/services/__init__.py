"""Domain rules: views parse input and call these; these own transactions, money and email."""
