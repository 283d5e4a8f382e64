//! A scene drawn on every frame Telescope streams, updated from the app's loop without
//! blocking it: `set` swaps a pointer, the pipeline's worker thread does the drawing.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use time::OffsetDateTime;

use super::scene::{Scene, SceneError};

#[derive(Debug, Default)]
struct Inner {
    scene: Mutex<Arc<Scene>>,
    origin: Mutex<Option<OffsetDateTime>>,
    updates: AtomicU64,
}

/// The scene to draw on streamed frames. Clones share it: keep one in the app, give one to the
/// [`crate::TelescopeConfig`].
#[derive(Debug, Clone, Default)]
pub struct Overlay {
    inner: Arc<Inner>,
}

impl Overlay {
    /// An overlay with an empty scene.
    pub fn new() -> Self {
        Self::default()
    }

    /// Replace the scene (validated first; an invalid scene leaves the current one in place).
    /// Costs a pointer swap under a lock the drawing side holds only as long.
    pub fn set(&self, scene: Scene) -> Result<(), SceneError> {
        scene.validate()?;
        let scene = Arc::new(scene);
        *self
            .inner
            .scene
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = scene;
        self.inner.updates.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Draw nothing from now on.
    pub fn clear(&self) {
        // An empty scene is always valid.
        let _ = self.set(Scene::default());
    }

    /// The scene in force.
    pub fn current(&self) -> Arc<Scene> {
        self.inner
            .scene
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// How many times the scene was replaced.
    pub fn updates(&self) -> u64 {
        self.inner.updates.load(Ordering::Relaxed)
    }

    /// Timestamps show `origin` plus the frame's capture time (for replays on a virtual clock,
    /// whose frames should show the recording's time). Without it they show the wall-clock time
    /// at drawing.
    pub fn set_time_origin(&self, origin: Option<OffsetDateTime>) {
        *self
            .inner
            .origin
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = origin;
    }

    /// The time a frame captured at `captured_at` shows.
    pub fn frame_time(&self, captured_at: Option<Duration>) -> OffsetDateTime {
        let origin = *self
            .inner
            .origin
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match (origin, captured_at) {
            (Some(o), Some(at)) => o + at,
            (Some(o), None) => o,
            (None, _) => OffsetDateTime::now_utc(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_scenes_keep_the_current_one_and_clones_share() {
        let overlay = Overlay::new();
        let app_side = overlay.clone();
        let good =
            Scene::from_json(r#"{"annotations":[{"type":"marker","at":[0.5,0.5]}]}"#).unwrap();
        app_side.set(good.clone()).unwrap();
        let mut bad = good.clone();
        bad.annotations.push(crate::annotation::Annotation::Line {
            from: crate::annotation::Point(f64::NAN, 0.0),
            to: crate::annotation::Point(0.0, 0.0),
            color: Default::default(),
            thickness: 1,
        });
        assert!(app_side.set(bad).is_err());
        assert_eq!(*overlay.current(), good);
        assert_eq!(overlay.updates(), 1);
        let origin = time::macros::datetime!(2026-11-30 00:00:00 UTC);
        overlay.set_time_origin(Some(origin));
        assert_eq!(
            overlay.frame_time(Some(Duration::from_secs(90))),
            time::macros::datetime!(2026-11-30 00:01:30 UTC)
        );
    }
}
