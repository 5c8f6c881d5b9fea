"""Built-in datasets: the seeded synthetic crypto market and arch's S&P 500 / VIX series."""
