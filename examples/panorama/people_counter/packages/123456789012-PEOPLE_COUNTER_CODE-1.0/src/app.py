"""A Panorama application in the shape of AWS's people-counter sample: a model node called
with a dict of arrays, a threshold parameter, boxes and labels added as metadata, a log file
opened at import time under /opt/aws/panorama/logs."""

import logging
from logging.handlers import RotatingFileHandler

import numpy as np
import panoramasdk

log = logging.getLogger("people_counter")
log.setLevel(logging.INFO)
handler = RotatingFileHandler("/opt/aws/panorama/logs/app.log", maxBytes=10_000_000, backupCount=1)
handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
log.addHandler(handler)


class Application(panoramasdk.node):
    def __init__(self):
        # As the sample does: no super().__init__(); the ports are there already.
        self.threshold = self.inputs.threshold.get()
        self.MODEL_NODE = "model_node"
        self.frames = 0
        log.info("threshold %s", self.threshold)

    def preprocess(self, image):
        h, w = image.shape[:2]
        ys = np.arange(64) * h // 64
        xs = np.arange(64) * w // 64
        small = image[ys][:, xs].astype(np.float32) / 255.0
        return np.transpose(small, (2, 0, 1))[np.newaxis]

    def process_streams(self):
        streams = self.inputs.video_in.get()
        for stream in streams:
            scores, boxes = self.call({"data": self.preprocess(stream.image)}, self.MODEL_NODE)
            for score, box in zip(scores.ravel(), boxes.reshape(-1, 4)):
                if score * 100 >= self.threshold:
                    stream.add_rect(*np.clip(box, 0, 1))
                    stream.add_label(f"person {score:.2f}", float(np.clip(box[0], 0, 1)), float(np.clip(box[1], 0, 1)))
            self.frames += 1
            log.info("%s frame %d at %s cached=%s", stream.stream_id, self.frames, stream.time_stamp, stream.is_cached)
        self.outputs.video_out.put(streams)


def main():
    try:
        app = Application()
        log.info("application started")
        while True:
            app.process_streams()
    except:  # noqa: E722  (as the samples do)
        log.exception("exception in the application")


main()
