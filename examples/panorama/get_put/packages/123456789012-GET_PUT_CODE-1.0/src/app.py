"""The runtime's own cost (benches/RESULTS.md, "Panorama applications on the simulator"): an
app that only takes each batch and hands it back."""

import panoramasdk


class Application(panoramasdk.node):
    def run(self):
        while True:
            self.outputs.video_out.put(self.inputs.video_in.get())


Application().run()
