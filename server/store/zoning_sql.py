"""SQL fragments both backends' zoning rollups use: `e` is a new event, in either dialect."""

ZONING_KINDS = "(4, 6, 8, 9, 10, 16)"  # the events zoning reads: screenviews, gestures, sales
GESTURE_KINDS = "(6, 8, 9, 10)"
ITS_SESSION = """
JOIN zoning_sessions AS k ON k.pid = e.pid AND k.uid = e.uid AND k.sn = e.sn"""
ITS_TVP = """
JOIN zoning_tvps AS t ON t.pid = e.pid AND t.screen = e.screen AND t.av = e.av AND t.tvp = e.tvp"""


def view_gestures(pid: str, session_id: str, scn: str) -> str:
    """`FROM … WHERE …` of one screenview's zoning_gestures rows, as `g`; the arguments are
    SQL expressions."""
    return f"""FROM zoning_gestures AS g
    WHERE g.pid = {pid} AND g.session_id = {session_id} AND g.scn = {scn}"""
