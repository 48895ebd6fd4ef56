__version__ = "0.1.0"

# The GitHub repository the README and notebooks link to (Open-in-Colab badges, clone URL).
REPOSITORY = "masuka-ai/masuka"
