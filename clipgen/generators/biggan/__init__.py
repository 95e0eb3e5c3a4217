"""BigGAN-deep (BigSleep): noise and class vectors through a frozen BigGAN."""
