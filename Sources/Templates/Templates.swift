// The Jinja interpreter for chat templates lands here.
