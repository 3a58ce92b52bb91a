from pipeline.cli.main import run

if __name__ == "__main__":  # not when a spawned text process imports it as __mp_main__
    run()
