//! The node's output: each iteration's streams into the cameras' Telescopes and the HDMI
//! picture's.

use super::*;

/// Hands the app's streams to the cameras' Telescopes and the HDMI picture's.
pub(super) struct Delivery {
    pub(super) outputs: Outputs,
    /// A camera model is on: the app stamps frames on receipt.
    pub(super) stamp_on_arrival: bool,
    /// Virtual time: `put` waits for room instead of dropping (none dropped).
    pub(super) blocking: bool,
}

impl Delivery {
    /// One iteration's streams, at node time `t`.
    pub(super) fn deliver(
        &mut self,
        t: Duration,
        streams: Vec<MediaStream>,
    ) -> Result<(), NodeError> {
        let with_hdmi = self.outputs.hdmi.is_some();
        let mut tiles: Vec<Frame> = Vec::new();
        for stream in streams {
            // A cached stream repeats a frame already streamed: only the HDMI picture shows it.
            if stream.is_cached && !with_hdmi {
                continue;
            }
            let cached = stream.is_cached;
            let (name, frame, at) = self.rendered(stream)?;
            if cached {
                tiles.push(frame);
                continue;
            }
            if with_hdmi {
                tiles.push(frame.clone());
            }
            self.put_camera(&name, frame.at(at))?;
        }
        if let Some(hdmi) = &self.outputs.hdmi {
            let picture = compose(&tiles, hdmi.size.width, hdmi.size.height).at(t);
            put(&hdmi.telescope, picture, self.blocking);
        }
        Ok(())
    }

    /// The stream's camera, its frame with the app's drawing, and the frame's time.
    fn rendered(&self, stream: MediaStream) -> Result<(String, Frame, Duration), NodeError> {
        // With a camera model, the app stamps frames on receipt.
        let at = if self.stamp_on_arrival {
            stream.arrived
        } else {
            stream.time_stamp
        };
        let name = stream.stream_id.clone();
        let frame = stream
            .into_rendered()
            .map_err(|e| NodeError::Output(e.to_string()))?;
        Ok((name, frame, at))
    }

    /// Puts a fresh frame into its camera's Telescope, timing the call.
    fn put_camera(&mut self, camera: &str, frame: Frame) -> Result<(), NodeError> {
        // A camera without any frame yet has no stream: match by name, not position.
        let Some(lane) = self.outputs.lanes.iter_mut().find(|l| l.name == camera) else {
            return Err(NodeError::Output(format!("unknown camera {camera}")));
        };
        if let Some(failure) = lane.telescope.failure() {
            return Err(NodeError::Output(format!(
                "camera {}: {failure}",
                lane.name
            )));
        }
        let started = Instant::now();
        put(&lane.telescope, frame, self.blocking);
        lane.put_ns.push(started.elapsed().as_nanos() as u64);
        Ok(())
    }
}

/// `put`, or on virtual time `put_blocking`: a simulated camera waits for the pipeline.
pub(super) fn put(telescope: &Telescope, frame: Frame, blocking: bool) {
    if blocking {
        telescope.put_blocking(frame);
    } else {
        telescope.put(frame);
    }
}
