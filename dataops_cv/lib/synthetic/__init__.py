"""Procedural capture days: camera frames with exact boxes, IMU/GPS/LiDAR logs and planted defects.

A day (partition key ``YYYY-MM-DD``) holds ``sessions_per_day`` capture sessions. In a session the
ego vehicle drives a smooth analytic trajectory along a street. Every camera records
``frames_per_session`` frames at ``camera_hz`` of its own procedural street scene: a sky/road
gradient with lane markings and noise, and object *tracks* (cars, pedestrians, cyclists, traffic
signs, each a distinct shape and palette) that move across the view and wrap around, so consecutive
frames look alike as they do on a real rig. Nearer objects are drawn over farther ones (occlusion).
An IMU (``imu_hz``), a GPS (``gps_hz``) and a LiDAR (``lidar_hz``, an N×4 float32 point cloud per
sweep, ray-cast against the ground, the street's walls and posts) log alongside.

Boxes are exact: each object is drawn as a pixel mask and its box is the mask's extent in pixel-edge
coordinates (``x2``/``y2`` exclusive), clipped to the frame but not to occluders; the share of the
object hidden by nearer ones is ``SceneObject.occluded``.

Modules, in the order a day is made:

* ``config``: ``SceneConfig`` and ``DefectConfig``, everything that shapes a day.
* ``seeds``: stable seeds, and why the same config gives the same bytes.
* ``timeline``: session starts, device clocks and their ground-truth offsets, reading times.
* ``trajectory``: the ego vehicle's analytic motion and its true GPS position.
* ``street``: a camera's street look and object tracks, sampled once per session and camera.
* ``shapes``: the pixel mask of each object class.
* ``rendering``: one frame's pixels (background, occlusion, exposure, noise, blur) and encoding.
* ``defects``: which slot carries which planted defect, and the files each defect makes.
* ``frames``: the files of a frame slot and of a day (``synthetic_frame``, ``generate_day``).
* ``sensors``: a session's IMU/GPS/LiDAR log in the generic sensor-log format.
* ``lidar``: the point cloud of one LiDAR sweep.
* ``drops``: a day written to disk as a rig would leave it (``write_drop``).
"""
