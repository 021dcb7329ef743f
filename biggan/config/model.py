"""Config of the networks (Section 3, Appendix B)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from biggan.config.base import Strict, check_resolution

# Appendix E's ten latent priors, in the paper's order; biggan.sampling.latents draws each one and gives
# its definition from the paper.
LatentPrior = Literal["normal", "uniform", "bernoulli", "censored_normal", "bernoulli_pm1", "categorical",
                      "normal_times_bernoulli", "normal_concat_bernoulli", "variance_annealing",
                      "per_sample_variance"]


class ModelConfig(Strict):
    """Generator and discriminator architecture."""

    arch: Literal["biggan", "deep"] = Field(
        "biggan", description="network family: BigGAN (Section 3) or BigGAN-deep (Appendix B: bottleneck blocks, "
                              "two per resolution, z concatenated with the shared embedding)")
    resolution: int | None = Field(
        None, description="image side in px (32, 64, 128, 256, 512); None = the shard set's (dataset.json)")
    num_classes: int | None = Field(
        None, ge=1, description="classes the model conditions on; None = the shard set's (dataset.json)")
    ch: int = Field(96, ge=1, description="channel multiplier of G (Table 1: 64 or 96)")
    d_ch: int | None = Field(None, ge=1, description="channel multiplier of D; None = same as ch")
    dim_z: int | None = Field(None, ge=1, description="latent size; None = the paper's for the resolution")
    shared_dim: int = Field(128, ge=1, description="shared class embedding size (Section 3)")
    shared: bool = Field(True, description="shared embedding projected to every BN (Table 1 'Shared')")
    hier: bool = Field(True, description="hierarchical latents: z split across blocks (Table 1 'Hier.')")
    g_attention: int | None = Field(
        -1, description="resolution of G's non-local block; -1 = the paper's, None = none")
    d_attention: int | None = Field(
        -1, description="resolution of D's non-local block; -1 = the paper's, None = none")
    sn_eps: float = Field(1e-4, gt=0, description="spectral norm epsilon (Appendix C: raised to 1e-4)")
    bn_eps: float = Field(1e-4, gt=0, description="batch norm epsilon (Appendix C: raised to 1e-4)")
    sn_power_iterations: int = Field(1, ge=1, description="power iterations per forward of every SN layer")
    # Section 4.1 studies G with and without SN (its conditioning of sigma_0 works "both with and
    # without Spectral Normalization"); SN off keeps the SN vectors, so singular values are still
    # tracked and logged. Architecture, not a training knob: the same weights compute another
    # function with SN off (W instead of W / sigma_0), so it may not change on resume.
    g_sn: bool = Field(True, description="spectral normalization in G (Section 4.1 studies G without it; "
                                         "singular values are tracked either way)")
    d_sn: bool = Field(True, description="spectral normalization in D (Section 4.2; singular values are "
                                         "tracked either way)")
    # Section 4.1 reads the top 3 with the Arnoldi iteration; ours are power-iteration estimates
    # (biggan.models.spectral), within 3% (sigma_0) and 15% (sigma_1, sigma_2) of the true values
    # (tests/unit/test_models_sv_accuracy.py).
    sn_tracked_svs: int = Field(
        3, ge=1, description="singular values tracked per SN layer for monitoring (Section 4.1: top 3; "
                             "power-iteration estimates, not the paper's Arnoldi)")
    # The truncation trick resamples only a prior's normal part; the two variance priors act during
    # training and a trained G samples N(0, I).
    latent: LatentPrior = Field(
        "normal", description="prior of z (Appendix E): normal N(0,I), uniform U[-1,1], bernoulli {0,1}, "
                              "censored_normal max(N,0), bernoulli_pm1 {-1,1}, categorical {-1,0,1}, "
                              "normal_times_bernoulli N x B{0,1}, normal_concat_bernoulli (half N, half B{0,1}), "
                              "variance_annealing (sigma 2 -> 1 over training), per_sample_variance (sigma_i ~ "
                              "U[0.5, 1] per sample in training)")
    # The two fields below exist for the TF-Hub BigGAN-deep generators (biggan.interop.pretrained);
    # trained runs keep their defaults.
    rgb_channels: int = Field(
        3, ge=3, description="output channels of G's last conv, the first 3 of which are the image (deep only; "
                             "TF-Hub's BigGAN-deep convolves to ch channels, all under one spectral norm)")
    bn_truncation_points: int = Field(
        0, ge=0, description="BN statistics stored per truncation value, evenly spaced over [0, 1] (deep only; "
                             "TF-Hub's BigGAN-deep stores 51); 0 = sampling computes standing statistics")

    _resolution = field_validator("resolution")(check_resolution)

    @model_validator(mode="after")
    def _deep_fields(self) -> ModelConfig:
        if self.arch == "deep" and not (self.shared and self.hier):
            # Appendix B: BigGAN-deep always concatenates z with the shared embedding and feeds
            # both to every block; there is no non-shared or non-hierarchical variant of it.
            raise ValueError("model.arch=deep always uses the shared embedding with z fed to every block "
                             "(Appendix B): leave model.shared and model.hier true")
        if self.arch != "deep" and (self.rgb_channels != 3 or self.bn_truncation_points):
            raise ValueError("model.rgb_channels and model.bn_truncation_points are BigGAN-deep fields "
                             "(TF-Hub's generators): set model.arch=deep")
        if self.bn_truncation_points == 1:
            raise ValueError("model.bn_truncation_points: 0 (none) or at least 2 points over [0, 1]")
        return self

    @property
    def discriminator_ch(self) -> int:
        return self.d_ch if self.d_ch is not None else self.ch

    def require_data_fields(self) -> None:
        """Models are built only from a resolved config (see biggan.experiment)."""
        missing = [key for key in ("resolution", "num_classes") if getattr(self, key) is None]
        if missing:
            raise ValueError(f"model.{' and model.'.join(missing)} not resolved: they default to the shard "
                             f"set's dataset.json, so resolve the config against its data first")
