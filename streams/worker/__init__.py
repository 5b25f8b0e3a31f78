"""The worker process (``streamrec worker``): the Faust app that turns events into recommendations.

Wiring (app.py), the user path (user_path.py) and the item path (item_path.py), each batch's one
transaction (transaction.py), what a worker serves and follows (serving.py, followers.py),
retention, and its web views and metrics. The pure steps a batch runs are streams/steps.
"""
