"""Training side of stm-zoo: Si(001):H simulator, the paper's degradations, datasets, training."""
