"""Model families."""
from tfmvae.models.mvae import MVAE
from tfmvae.models.vaegan import VAEGAN
from tfmvae.models.svg import SVG
from tfmvae.models.video_mvae import VideoMVAE
from tfmvae.models.video_vaegan import VideoVAEGAN
