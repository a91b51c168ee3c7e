"""facegender: face gender classifiers that stay accurate under blur, fog, rain, low light and noise."""

__version__ = "0.1.0"

CLASS_NAMES = ("female", "male")  # label order: index 0 = female, 1 = male; the model outputs p(male)
