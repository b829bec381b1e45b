"""Shared test data: gin bindings that select each method on small models."""

# One binding list per method, with small attack budgets; tests add their own model bindings.
METHOD_BINDINGS = {
    "as_gan": ["build_gan.method = 'as_gan'", "ASGAN.epsilon = 0.05"],
    "dat": ["build_gan.method = 'dat'", "DAT.epsilon = 0.05", "GAN.loss = 'wasserstein'"],
    "robgan": ["build_gan.method = 'robgan'", "build_discriminator.head = 'ac'",
               "RobGAN.epsilon = 0.05", "RobGAN.pgd_steps = 2", "RobGAN.pgd_step_size = 0.03"],
    "fast_robgan": ["build_gan.method = 'fast_robgan'", "build_discriminator.head = 'ac'",
                    "FastRobGAN.epsilon = 0.05", "FastRobGAN.batch_size = 8",
                    "GAN.loss = 'hinge'"],
}
