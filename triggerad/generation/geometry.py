"""Track geometry: impact parameters, track lines and track-jet variables (mm, GeV, vectorised).

Tracks are straight lines through their production vertex along their momentum (no magnetic
field): adequate for impact parameters of prompt and displaced tracks as long as the displacement
is small against the radius of curvature (~0.9 m for a 1 GeV track in 3.8 T); for a low-pT track
produced at a large radius the helix and the line differ (a documented simplification).

Sign conventions follow CMS (``reco::Track::dxy``/``dz`` with respect to a point; PFNano
``PFCands_d0``/``PFCands_dz``): ``d0 = (-(x - x_pv) p_y + (y - y_pv) p_x) / p_T`` and the point of
closest approach in the transverse plane is ``pv + d0 (-sin phi, cos phi)``.
"""

from __future__ import annotations

import numpy as np

from triggerad.generation.detector import delta_phi


def impact_parameters(
    x: np.ndarray, y: np.ndarray, z: np.ndarray, px: np.ndarray, py: np.ndarray, pz: np.ndarray,
    *, pv: tuple[float, float, float] = (0.0, 0.0, 0.0),
) -> tuple[np.ndarray, np.ndarray]:
    """Transverse (d0) and longitudinal (dz) impact parameters of straight-line tracks.

    Parameters
    ----------
    x, y, z : arrays
        Production vertex of each particle (mm).
    px, py, pz : arrays
        Momentum of each particle (GeV).
    pv : (x, y, z)
        The primary vertex (mm).

    Returns
    -------
    d0, dz : arrays (mm)
        ``d0 = (-(x - x_pv) p_y + (y - y_pv) p_x) / p_T`` (CMS ``dxy``), and
        ``dz = (z - z_pv) - ((x - x_pv) p_x + (y - y_pv) p_y) / p_T * p_z / p_T``: z of the track
        at its transverse point of closest approach, relative to the primary vertex. A track
        with p_T = 0 gets d0 = 0 and dz = z - z_pv.
    """
    dx, dy, dz0 = x - pv[0], y - pv[1], z - pv[2]
    pt = np.hypot(px, py)
    safe = np.where(pt > 0, pt, 1.0)
    d0 = np.where(pt > 0, (-dx * py + dy * px) / safe, 0.0)
    dz = dz0 - np.where(pt > 0, (dx * px + dy * py) / safe * pz / safe, 0.0)
    return d0, dz


def reference_point(
    d0: np.ndarray, dz: np.ndarray, phi: np.ndarray,
    *, pv: tuple[float, float, float] = (0.0, 0.0, 0.0),
) -> np.ndarray:
    """(k, 3) point of a track line at its transverse closest approach to ``pv`` (inverse of
    :func:`impact_parameters` for a line of azimuth ``phi``)."""
    return np.stack(
        [pv[0] - d0 * np.sin(phi), pv[1] + d0 * np.cos(phi), pv[2] + dz], axis=-1
    )


def unit_vectors(eta: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """(k, 3) unit momentum directions from (eta, phi)."""
    sin_theta = 1.0 / np.cosh(eta)
    return np.stack(
        [sin_theta * np.cos(phi), sin_theta * np.sin(phi), np.tanh(eta)], axis=-1
    )


def signed_impact_parameters(
    point: np.ndarray, direction: np.ndarray, axis: np.ndarray,
    *, pv: tuple[float, float, float] = (0.0, 0.0, 0.0),
) -> tuple[np.ndarray, np.ndarray]:
    """2D and 3D impact parameters of track lines, signed with respect to a jet axis.

    The sign is positive when the point of closest approach lies on the side of the jet
    (``(pca - pv) . axis > 0``), as for tracks from a decay along the jet.

    Parameters
    ----------
    point, direction : (k, 3)
        A point on each track line and its direction (need not be normalised).
    axis : (k, 3)
        Jet direction for each track.
    pv : (x, y, z)
        Primary vertex.

    Returns
    -------
    ip2d, ip3d : (k,) arrays (mm)
    """
    rel = point - np.asarray(pv)
    u = direction / np.linalg.norm(direction, axis=-1, keepdims=True)
    pca3 = rel - np.sum(rel * u, axis=-1, keepdims=True) * u
    ip3d = np.linalg.norm(pca3, axis=-1) * _sign(np.sum(pca3 * axis, axis=-1))
    ut = u[:, :2] / np.maximum(np.linalg.norm(u[:, :2], axis=-1, keepdims=True), 1e-12)
    rt = rel[:, :2]
    pca2 = rt - np.sum(rt * ut, axis=-1, keepdims=True) * ut
    ip2d = np.linalg.norm(pca2, axis=-1) * _sign(np.sum(pca2 * axis[:, :2], axis=-1))
    return ip2d, ip3d


def _sign(x: np.ndarray) -> np.ndarray:
    """+1 for x >= 0, -1 otherwise (an impact parameter of 0 counts as positive)."""
    return np.where(x >= 0, 1.0, -1.0)


def line_distance(
    p1: np.ndarray, u1: np.ndarray, p2: np.ndarray, u2: np.ndarray
) -> np.ndarray:
    """(k,) distance of closest approach between the lines ``p1 + s u1`` and ``p2 + t u2``."""
    n = np.cross(u1, u2)
    norm = np.linalg.norm(n, axis=-1)
    diff = p2 - p1
    parallel = norm < 1e-12
    safe = np.where(parallel, 1.0, norm)
    skew = np.abs(np.sum(diff * n, axis=-1)) / safe
    u1n = u1 / np.linalg.norm(u1, axis=-1, keepdims=True)
    along = diff - np.sum(diff * u1n, axis=-1, keepdims=True) * u1n
    return np.where(parallel, np.linalg.norm(along, axis=-1), skew)


def relative_momentum(
    p: np.ndarray, axis: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Momentum of tracks relative to a jet axis.

    Parameters
    ----------
    p : (k, 3)
        Track momenta (GeV).
    axis : (k, 3)
        Jet momenta or directions.

    Returns
    -------
    p_par, p_rel, eta_rel : (k,) arrays
        Momentum along the axis, momentum perpendicular to it (GeV), and the pseudorapidity of
        the track relative to the axis, ``0.5 ln((|p| + p_par) / (|p| - p_par))``.
    """
    a = axis / np.linalg.norm(axis, axis=-1, keepdims=True)
    mag = np.linalg.norm(p, axis=-1)
    p_par = np.sum(p * a, axis=-1)
    p_rel = np.linalg.norm(np.cross(p, a), axis=-1)
    tiny = 1e-9 * np.maximum(mag, 1e-9)
    eta_rel = 0.5 * np.log(np.maximum(mag + p_par, tiny) / np.maximum(mag - p_par, tiny))
    return p_par, p_rel, eta_rel


def delta_r(eta1: np.ndarray, phi1: np.ndarray, eta2: np.ndarray, phi2: np.ndarray) -> np.ndarray:
    """DeltaR = sqrt(Deta^2 + Dphi^2), Dphi wrapped into [-pi, pi)."""
    return np.hypot(eta1 - eta2, delta_phi(phi1, phi2))


class FourMomenta:
    """Mixin: ``pt``, ``eta``, ``phi`` and ``mass`` of the (k, 4) [px, py, pz, E] array ``p4``."""

    p4: np.ndarray

    @property
    def pt(self) -> np.ndarray:
        return np.hypot(self.p4[:, 0], self.p4[:, 1])

    @property
    def eta(self) -> np.ndarray:
        return np.arcsinh(self.p4[:, 2] / np.maximum(self.pt, 1e-9))

    @property
    def phi(self) -> np.ndarray:
        return np.arctan2(self.p4[:, 1], self.p4[:, 0])

    @property
    def mass(self) -> np.ndarray:
        m2 = self.p4[:, 3] ** 2 - np.sum(self.p4[:, :3] ** 2, axis=1)
        return np.sqrt(np.maximum(m2, 0.0))
