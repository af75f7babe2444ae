"""Evaluation of stm-zoo models: PSNR/SSIM/KID/CMMD, the paper's tables, timing."""
