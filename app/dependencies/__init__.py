"""What the routers inject, one module per domain. Each reads what the lifespan
(`app.main`) built for the process from `app.state`, under the name it set."""
