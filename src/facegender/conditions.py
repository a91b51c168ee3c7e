"""The adverse conditions a face photo meets (blur, motion blur, fog, rain, low light, noise, JPEG, down-scaling,
glare, overexposure), in one place for both of their uses: training draws one at random strength for a view
(training/augment.py), the robustness suite applies each at three fixed severities (evaluation/corrupt.py).
Albumentations (OpenCV underneath) does the image work."""

from __future__ import annotations

from typing import Any

# The smallest framing square, in pixels, that down-scaling may leave: a face about 14 px wide, as small as the
# robustness suite's strongest down-scaling leaves one (an 80-px crop scaled by 0.15), so a view stays a face.
MIN_DEGRADED_SIDE = 20

# Noise and rain are drawn twice as often as each other condition (albumentations.OneOf draws in proportion to
# p; the others keep the default 0.5): the bundled model version 3, trained with every condition equally likely,
# fell to 0.52 accuracy on celeba-gender/val under the robustness suite's strongest noise (answering "male" for
# 94 % of the faces) and to 0.78 under its torrential rain, while it lost at most 0.11 under any other condition.
NOISE_RAIN_SHARE = 1.0


def adverse_condition(probability: float, side: int) -> Any:
    """One adverse condition (blur, motion blur, fog, rain, low light, noise, JPEG, down-scaling, glare or
    overexposure), applied with `probability` to a square of `side` pixels at the photo's own
    resolution. Sizes in pixels (blur, rain drops, glare, down-scaling) scale with the side, so a condition is as
    strong on an 80-px crop as on a 160-px one and the smallest leaves a face of about 14 px."""
    import albumentations as A

    f = side / 160

    def odd(value: float) -> int:
        return max(3, round(value) | 1)

    lowest = min(1.0, max(0.12, MIN_DEGRADED_SIDE / side))
    return A.OneOf(
        [
            A.GaussianBlur(blur_limit=0, sigma_limit=(max(0.3, 0.8 * f), max(0.5, 3.0 * f))),
            A.MotionBlur(blur_limit=(odd(5 * f), odd(13 * f))),
            A.RandomFog(fog_coef_range=(0.3, 0.8), alpha_coef=0.1),
            A.OneOf(
                [
                    A.RandomRain(
                        slant_range=(-15, 15), drop_length=max(3, side // 12), blur_value=3, brightness_coefficient=0.8
                    ),
                    A.RandomRain(slant_range=(-15, 15), rain_type="heavy"),
                    A.RandomRain(slant_range=(-15, 15), rain_type="torrential"),
                ],
                p=NOISE_RAIN_SHARE,
            ),
            A.RandomGamma(gamma_limit=(180, 350)),  # low light: gamma > 1 darkens
            A.GaussNoise(std_range=(0.05, 0.3), p=NOISE_RAIN_SHARE),
            A.ImageCompression(quality_range=(8, 40)),
            A.Downscale(scale_range=(lowest, max(lowest, 0.4))),
            A.RandomSunFlare(flare_roi=(0, 0, 1, 0.6), src_radius=max(8, side // 3)),
            A.RandomBrightnessContrast(brightness_limit=(0.25, 0.5), contrast_limit=(-0.4, -0.1)),  # overexposure
        ],
        p=probability,
    )


SEVERITIES = (1, 2, 3)


def corruption(name: str, severity: int) -> Any:
    """The albumentations transform for one condition at severity 1 (mild) to 3 (severe), always applied."""
    import albumentations as A

    s = severity - 1
    table = {
        "blur": lambda: A.GaussianBlur(blur_limit=0, sigma_limit=((1.0, 2.0, 3.5)[s],) * 2, p=1),
        "motion_blur": lambda: A.MotionBlur(blur_limit=((7, 7), (13, 13), (21, 21))[s], p=1),
        "fog": lambda: A.RandomFog(fog_coef_range=((0.3, 0.3), (0.5, 0.5), (0.8, 0.8))[s], alpha_coef=0.1, p=1),
        "rain": lambda: A.RandomRain(rain_type=("drizzle", "heavy", "torrential")[s], p=1),
        "low_light": lambda: A.RandomGamma(gamma_limit=((180, 180), (260, 260), (380, 380))[s], p=1),
        "noise": lambda: A.GaussNoise(std_range=((0.08, 0.08), (0.16, 0.16), (0.3, 0.3))[s], p=1),
        "jpeg": lambda: A.ImageCompression(quality_range=((30, 30), (15, 15), (6, 6))[s], p=1),
        "downscale": lambda: A.Downscale(scale_range=((0.5, 0.5), (0.3, 0.3), (0.15, 0.15))[s], p=1),
        "overexposure": lambda: A.RandomBrightnessContrast(
            brightness_limit=((0.3, 0.3), (0.5, 0.5), (0.7, 0.7))[s], contrast_limit=(-0.3, -0.3), p=1
        ),
    }
    return table[name]()


CONDITIONS = ("blur", "motion_blur", "fog", "rain", "low_light", "noise", "jpeg", "downscale", "overexposure")
