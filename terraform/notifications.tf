resource "aws_sns_topic" "notifications" {
  name              = "${local.prefix}-notifications"
  kms_master_key_id = aws_kms_key.main.arn
}

resource "aws_sns_topic_subscription" "support" {
  count     = var.notification_email == null ? 0 : 1
  topic_arn = aws_sns_topic.notifications.arn
  protocol  = "email"
  endpoint  = var.notification_email
}
