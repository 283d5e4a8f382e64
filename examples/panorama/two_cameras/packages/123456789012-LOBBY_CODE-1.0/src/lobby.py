"""Two cameras through one node used by composition (as the pose-estimation sample does), the
model called name first (as the SDK reference shows), frames skipped when cached, a file kept
in /opt/aws/panorama/storage."""

import json

import numpy as np
import panoramasdk


class Lobby:
    def __init__(self, node):
        self.node = node
        self.label = node.inputs.label.get()
        self.every = node.inputs.every.get()
        self.seen = {}

    def step(self):
        streams = self.node.inputs.video_in.get()
        for s in streams:
            if s.is_cached:
                continue
            h, w = s.image.shape[:2]
            ys, xs = np.arange(32) * h // 32, np.arange(32) * w // 32
            (level,) = self.node.call("brightness_model", {"image": s.image[ys][:, xs][np.newaxis]})
            self.seen[s.stream_id] = self.seen.get(s.stream_id, 0) + 1
            s.add_label(f"{self.label} {s.stream_id} {float(level[0]):.2f}", 0.05, 0.1)
            s.add_rect(0.0, 0.0, 1.0, 1.0)
        self.node.outputs.video_out.put(streams)


if __name__ == "__main__":
    lobby = Lobby(panoramasdk.node())
    try:
        while True:
            lobby.step()
    finally:
        with open("/opt/aws/panorama/storage/seen.json", "w") as f:
            json.dump(lobby.seen, f)
