"""Customer service: a conversation per order between its buyer and the seller's team, and the
cases a buyer opens about a problem with what they received."""
