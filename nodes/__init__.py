"""ROS 2 node glue for rt_reid: parameters, subscriptions and publishers; logic lives in rt_reid."""
