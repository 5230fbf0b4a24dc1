"""Model families."""
from tfmvae.models.mvae import MVAE
